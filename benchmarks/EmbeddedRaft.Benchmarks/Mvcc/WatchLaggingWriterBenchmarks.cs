using System.Diagnostics;
using System.Text;
using BenchmarkDotNet.Attributes;
using EmbeddedRaft.Mvcc;

namespace EmbeddedRaft.Benchmarks.Mvcc;

/// <summary>
/// A writer's put latency while a watcher lags (issue 16). One writer awaits its puts one at a time
/// (a client's latency), 5,000 puts to 1,000 keys under one prefix, under three conditions:
/// <see cref="WatcherCondition.NoWatcher"/>; <see cref="WatcherCondition.KeepingUp"/>, one prefix
/// watcher reading every event as it comes; <see cref="WatcherCondition.Lagging100x"/>, one prefix
/// watcher that, while the writer runs, reads one event per 100 puts completed (100x slower than the
/// write rate, whatever that rate is), with a 16-event buffer so it falls behind and catches up from
/// history, then reads the rest at full speed once the writer is done. The writer's code is the same
/// in all three (it signals its progress every 100 puts). p50/p99/p999 of the put latency go to the
/// console and /tmp/mvcc-bench-results.txt with, for a watcher, how many events it received, its last
/// revision against the store's, and how often it fell behind; a watcher that missed an event, got
/// one out of order or twice fails the iteration. Mean is per put. No job attribute: the job comes
/// from the command line (see docs/benchmarks.md).
/// </summary>
public class WatchLaggingWriterBenchmarks
{
    private const int Puts = 5_000;
    private const int PutsPerLaggingRead = 100;
    private const int SmallBufferEvents = 16;

    private readonly byte[] _value = new byte[100];
    private byte[][] _keys = null!;
    private string _directory = null!;
    private MvccStore _store = null!;
    private WatchStream? _watch;
    private Task<(long Events, long LastRevision)>? _reader;
    private SemaphoreSlim _progress = null!;
    private volatile bool _writerDone;
    private double[] _latenciesMs = null!;

    /// <summary>What watches the prefix while the writer runs.</summary>
    public enum WatcherCondition
    {
        /// <summary>No watcher.</summary>
        NoWatcher,

        /// <summary>One prefix watcher reading every event as it comes.</summary>
        KeepingUp,

        /// <summary>One prefix watcher reading one event per 100 puts while the writer runs.</summary>
        Lagging100x,
    }

    /// <summary>The last iteration's put latency quantiles (ms) and rate, for <see cref="WatchWriterCpuProbe"/>.</summary>
    internal (double P50, double P99, double P999, double PutsPerSecond) LastLatency { get; private set; }

    [Params(WatcherCondition.NoWatcher, WatcherCondition.KeepingUp, WatcherCondition.Lagging100x)]
    public WatcherCondition Condition { get; set; }

    [Params(MvccDurability.Synced, MvccDurability.NoSync)]
    public MvccDurability Durability { get; set; }

    [GlobalSetup]
    public void CreateKeys()
    {
        _keys = Enumerable.Range(0, 1_000).Select(i => Encoding.ASCII.GetBytes($"lag/{i:D4}")).ToArray();
    }

    [IterationSetup]
    public void OpenStoreAndWatcher()
    {
        _directory = MvccWorkload.NewDirectory("watch-lag");
        _store = MvccStore.Open(_directory, MvccStoreEngine.Options with
        {
            Durability = Durability,
            Watch = new WatchOptions { MaxBufferedEvents = SmallBufferEvents },
        });
        _latenciesMs = new double[Puts];
        _progress = new SemaphoreSlim(0);
        _writerDone = false;
        _watch = null;
        _reader = null;
        if (Condition != WatcherCondition.NoWatcher)
        {
            // Created before the first put, from the next write: it must see exactly the benchmark's puts.
            var watch = _store.Watch(new WatchRequest { Key = "lag/"u8.ToArray(), RangeEnd = KeyRange.PrefixEnd("lag/"u8) });
            _watch = watch;
            bool lagging = Condition == WatcherCondition.Lagging100x;
            _reader = Task.Run(() => ReadAsync(watch, lagging));
        }
    }

    [IterationCleanup]
    public void Close()
    {
        _watch?.Dispose();
        _store.Dispose();
        _progress.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    [Benchmark(OperationsPerInvoke = Puts)]
    public async Task WriterPutLatency()
    {
        long first = _store.Revision + 1;
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < Puts; i++)
        {
            long started = Stopwatch.GetTimestamp();
            await _store.PutAsync(new PutRequest { Key = _keys[i % _keys.Length], Value = _value }).ConfigureAwait(false);
            _latenciesMs[i] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            if ((i + 1) % PutsPerLaggingRead == 0)
            {
                _progress.Release();
            }
        }

        double seconds = clock.Elapsed.TotalSeconds;
        _writerDone = true;
        _progress.Release(); // wakes a lagging reader waiting for the next 100 puts
        long fellBehind = _store.Watches.FellBehindCount;
        var sorted = _latenciesMs.Order().ToList();
        string watcher = "no watcher";
        if (_reader is not null)
        {
            var (events, lastRevision) = await _reader.WaitAsync(TimeSpan.FromMinutes(2)).ConfigureAwait(false);
            long expectedLast = first + Puts - 1;
            if (events != Puts || lastRevision != expectedLast || _store.Revision != expectedLast)
            {
                throw new InvalidOperationException($"The watcher got {events} events of {Puts}, last revision {lastRevision}, expected {expectedLast} (store at {_store.Revision}).");
            }

            watcher = $"watcher got {events:N0} of {Puts:N0} events in order, last revision {lastRevision} = the store's; fell behind {fellBehind} times while the writer ran";
        }

        LastLatency = (MvccWorkload.Quantile(sorted, 0.5), MvccWorkload.Quantile(sorted, 0.99), MvccWorkload.Quantile(sorted, 0.999), Puts / seconds);
        MvccWorkload.AppendResult(
            $"WatchLaggingWriter {Condition} {Durability}: {Puts:N0} awaited puts at {Puts / seconds:N0} puts/s; put latency p50 {MvccWorkload.Quantile(sorted, 0.5):F3} ms p99 {MvccWorkload.Quantile(sorted, 0.99):F3} ms p999 {MvccWorkload.Quantile(sorted, 0.999):F3} ms max {sorted[^1]:F3} ms; {watcher}");
    }

    /// <summary>Reads the watch until it has the benchmark's last put, checking each event's revision
    /// is the previous one's + 1 (one put per revision: no gap, no duplicate, in order).</summary>
    private async Task<(long Events, long LastRevision)> ReadAsync(WatchStream watch, bool lagging)
    {
        long events = 0;
        long last = 0;
        await foreach (var response in watch.ConfigureAwait(false))
        {
            foreach (var e in response.Events)
            {
                if (last != 0 && e.Kv.ModRevision != last + 1)
                {
                    throw new InvalidOperationException($"The watcher got revision {e.Kv.ModRevision} after {last}.");
                }

                last = e.Kv.ModRevision;
                events++;
                if (lagging && !_writerDone)
                {
                    // One event per 100 puts completed while the writer runs.
                    await _progress.WaitAsync().ConfigureAwait(false);
                }
            }

            if (events == Puts)
            {
                return (events, last);
            }
        }

        return (events, last);
    }
}
