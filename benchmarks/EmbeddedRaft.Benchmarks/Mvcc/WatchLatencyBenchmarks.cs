using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using EmbeddedRaft.Mvcc;

namespace EmbeddedRaft.Benchmarks.Mvcc;

/// <summary>
/// 10,000 watchers on distinct keys, each read by its own <c>await foreach</c>, while a writer puts
/// to those keys (chosen at random, seed 1) at 50,000 puts/s for 2 s, paced by the clock in 1 ms
/// steps. Each value carries its put's start timestamp; each watcher records the time from put to
/// event. p50/p99/max of that latency, the put rate reached and the number of events go to the
/// console and /tmp/mvcc-bench-results.txt; Mean is the whole run per put. Both durabilities:
/// synced (an event is shown once its batch is on disk, so the latency includes the fdatasync) and
/// no-sync (shown once applied, as under Raft). The result line also names what could make the
/// tail: GC collections and pauses during the run, and the longest thread-pool queue seen.
/// </summary>
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 0, iterationCount: 3, invocationCount: 1)]
public class WatchLatencyBenchmarks
{
    private const int Watchers = 10_000;
    private const int PutsPerSecond = 50_000;
    private const int Puts = 2 * PutsPerSecond;

    private string _directory = null!;
    private MvccStore _store = null!;
    private byte[][] _keys = null!;
    private List<WatchStream> _watches = null!;
    private List<Task> _readers = null!;
    private double[] _latenciesMs = null!;
    private double[] _putLatenciesMs = null!;
    private int _received;
    private TaskCompletionSource _allReceived = null!;

    [Params(MvccDurability.Synced, MvccDurability.NoSync)]
    public MvccDurability Durability { get; set; }

    [IterationSetup]
    public void OpenStoreAndWatchers()
    {
        _directory = MvccWorkload.NewDirectory("watch-latency");
        _store = MvccStore.Open(_directory, MvccStoreEngine.Options with { Durability = Durability });
        _keys = Enumerable.Range(0, Watchers).Select(i => Encoding.ASCII.GetBytes($"watcher/{i:D5}")).ToArray();
        _latenciesMs = new double[Puts];
        _putLatenciesMs = new double[Puts];
        _received = 0;
        _allReceived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _watches = _keys.Select(key => _store.Watch(new WatchRequest { Key = key })).ToList();
        _readers = _watches.Select(watch => Task.Run(() => ReadAsync(watch))).ToList();
    }

    [IterationCleanup]
    public void Close()
    {
        foreach (var watch in _watches)
        {
            watch.Dispose();
        }

        _store.Dispose();
        Task.WhenAll(_readers).ContinueWith(_ => { }, TaskScheduler.Default).Wait();
        Directory.Delete(_directory, recursive: true);
    }

    [Benchmark(OperationsPerInvoke = Puts)]
    public async Task TenThousandWatchersUnderFiftyThousandPutsPerSecond()
    {
        var random = new Random(1);
        var pending = new List<Task>(Puts);
        var gcBefore = (GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2), GC.GetTotalPauseDuration());
        long lastGcIndex = GC.GetGCMemoryInfo(GCKind.Any).Index;
        double maxGcPauseMs = 0;
        long maxQueuedWorkItems = 0;
        var clock = Stopwatch.StartNew();
        int issued = 0;
        while (issued < Puts)
        {
            // What could make the tail: a GC pause (every event in flight waits it out) or a queue of
            // thread-pool work (the watchers' wake-ups and the writers' continuations).
            maxQueuedWorkItems = Math.Max(maxQueuedWorkItems, ThreadPool.PendingWorkItemCount);
            var gc = GC.GetGCMemoryInfo(GCKind.Any);
            if (gc.Index != lastGcIndex)
            {
                lastGcIndex = gc.Index;
                foreach (var pause in gc.PauseDurations)
                {
                    maxGcPauseMs = Math.Max(maxGcPauseMs, pause.TotalMilliseconds);
                }
            }

            // Pace by the clock: every put due by now is issued, then yield for the next millisecond.
            long due = Math.Min(Puts, (long)(clock.Elapsed.TotalSeconds * PutsPerSecond) + 1);
            for (; issued < due; issued++)
            {
                var value = new byte[16];
                BinaryPrimitives.WriteInt64LittleEndian(value, Stopwatch.GetTimestamp());
                BinaryPrimitives.WriteInt32LittleEndian(value.AsSpan(8), issued);
                pending.Add(TimedPutAsync(_store.PutAsync(new PutRequest { Key = _keys[random.Next(Watchers)], Value = value }), issued));
            }

            await Task.Delay(1).ConfigureAwait(false);
        }

        await Task.WhenAll(pending).ConfigureAwait(false);
        double seconds = clock.Elapsed.TotalSeconds;
        await _allReceived.Task.WaitAsync(TimeSpan.FromMinutes(2)).ConfigureAwait(false);
        var sorted = _latenciesMs.Order().ToList();
        var puts = _putLatenciesMs.Order().ToList();
        string gcs = $"GCs gen0/1/2 {GC.CollectionCount(0) - gcBefore.Item1}/{GC.CollectionCount(1) - gcBefore.Item2}/{GC.CollectionCount(2) - gcBefore.Item3}, pauses {(GC.GetTotalPauseDuration() - gcBefore.Item4).TotalMilliseconds:F1} ms in all, longest seen {maxGcPauseMs:F1} ms";
        MvccWorkload.AppendResult(
            $"WatchLatency {Durability}: {Watchers:N0} watchers, {Puts:N0} puts at {Puts / seconds:N0} puts/s; put-to-event p50 {MvccWorkload.Quantile(sorted, 0.5):F2} ms p99 {MvccWorkload.Quantile(sorted, 0.99):F2} ms max {sorted[^1]:F2} ms; watchers fell behind {_store.Watches.FellBehindCount} times; the puts' own latency p50 {MvccWorkload.Quantile(puts, 0.5):F2} ms p99 {MvccWorkload.Quantile(puts, 0.99):F2} ms; {gcs}; thread-pool queue up to {maxQueuedWorkItems:N0} items");
    }

    /// <summary>The put's own latency (issue to completion), beside its event's: a tail both share is the writer's, not the watch path's.</summary>
    private async Task TimedPutAsync(ValueTask<PutResponse> put, int index)
    {
        long started = Stopwatch.GetTimestamp();
        await put.ConfigureAwait(false);
        _putLatenciesMs[index] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
    }

    private async Task ReadAsync(WatchStream watch)
    {
        try
        {
            await foreach (var response in watch.ConfigureAwait(false))
            {
                long now = Stopwatch.GetTimestamp();
                foreach (var e in response.Events)
                {
                    var value = e.Kv.Value.Span;
                    long started = BinaryPrimitives.ReadInt64LittleEndian(value);
                    int index = BinaryPrimitives.ReadInt32LittleEndian(value[8..]);
                    _latenciesMs[index] = Stopwatch.GetElapsedTime(started, now).TotalMilliseconds;
                    if (Interlocked.Increment(ref _received) == Puts)
                    {
                        _allReceived.TrySetResult();
                    }
                }
            }
        }
        catch (ObjectDisposedException)
        {
            // The store closed at the end of the iteration.
        }
    }
}
