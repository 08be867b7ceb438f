using System.Diagnostics;
using System.Text;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using EmbeddedRaft.Mvcc;

namespace EmbeddedRaft.Benchmarks.Mvcc;

/// <summary>
/// Events per second a watch delivers (issue 16). <see cref="PutsAlone"/>: 200,000 puts under one
/// prefix, 10,000 in flight, synced (the store's put rate). <see cref="PutsWithALivePrefixWatcher"/>:
/// the same puts while one prefix watcher reads every event; it ends when the watcher has the last
/// one, so its rate is the events/s delivered live (the watcher's buffer is large enough for a whole
/// batch, so it stays on the live path; how often it fell behind goes to the results file).
/// <see cref="PutsWithALiveReusingPrefixWatcher"/>: the same with a watch that reuses its events
/// (<see cref="WatchRequest.ReuseEvents"/>: no object per event).
/// <see cref="CatchUpFromHistory"/>: a watcher from revision 2 over 1,000,000 stored puts reads them
/// all from the store's history (the unsynced path). Mean is per put or event.
/// </summary>
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 1, iterationCount: 5, invocationCount: 1)]
[MemoryDiagnoser]
public class WatchThroughputBenchmarks
{
    private const int LivePuts = 200_000;
    private const int HistoryPuts = 1_000_000;

    private readonly byte[] _value = new byte[100];
    private string _directory = null!;
    private MvccStore _store = null!;
    private byte[][] _keys = null!;
    private MvccStore? _history;
    private string? _historyDirectory;

    /// <summary>The responses the live watcher of the last <see cref="PutsWithALivePrefixWatcher"/> received (for the <c>watch-cpu</c> probe).</summary>
    internal long LastResponses { get; private set; }

    /// <summary>The most events one of those responses carried.</summary>
    internal int LastLargestResponse { get; private set; }

    /// <summary>Puts kept in flight (the <c>watch-cpu</c> probe's <c>--inflight</c>; BenchmarkDotNet's jobs keep <see cref="MvccWorkload.WritesInFlight"/>).</summary>
    internal int WritesInFlight { get; set; } = MvccWorkload.WritesInFlight;

    /// <summary>
    /// True (the default, and BenchmarkDotNet's jobs): the puts' clients await each put's
    /// <see cref="ValueTask{TResult}"/> as a client awaiting its own write does, and as the store's own put rows
    /// do (<see cref="MvccStoreEngine"/>), so "the store's put rate" here is the one the MvccStore rows measure.
    /// False (the <c>watch-cpu</c> probe's <c>--task</c>; the row's client from session 7 to session 16): each
    /// put is turned into a <see cref="Task"/> (~85 B per put, alive while the put is in flight, and a pool
    /// work item per completion) — the client's cost, not the store's or the watcher's (docs/benchmarks.md,
    /// "Watches, session 15": it was a third of the GC pauses of the row's invocations alone).
    /// </summary>
    internal bool AwaitValueTasks { get; set; } = true;

    /// <summary>The store of the current invocation (between <see cref="OpenEmptyStore"/> and <see cref="CloseStore"/>; for the <c>watch-cpu</c> probe).</summary>
    internal MvccStore Store => _store;

    [GlobalSetup]
    public void CreateKeys()
    {
        _keys = Enumerable.Range(0, 100_000).Select(i => Encoding.ASCII.GetBytes($"watched/{i:D8}")).ToArray();
    }

    [GlobalSetup(Target = nameof(CatchUpFromHistory))]
    public void FillHistory()
    {
        CreateKeys();
        _historyDirectory = MvccWorkload.NewDirectory("watch-history");
        _history = MvccStore.Open(_historyDirectory, MvccStoreEngine.Options);
        MvccWorkload.RunWindowedAsync(HistoryPuts, MvccWorkload.WritesInFlight, i =>
            _history.PutAsync(new PutRequest { Key = _keys[i % _keys.Length], Value = _value }).AsTask()).GetAwaiter().GetResult();
    }

    [GlobalCleanup(Target = nameof(CatchUpFromHistory))]
    public void DeleteHistory()
    {
        _history?.Dispose();
        Directory.Delete(_historyDirectory!, recursive: true);
    }

    [IterationSetup(Targets = [nameof(PutsAlone), nameof(PutsWithALivePrefixWatcher), nameof(PutsWithALiveReusingPrefixWatcher)])]
    public void OpenEmptyStore()
    {
        _directory = MvccWorkload.NewDirectory("watch-live");
        _store = MvccStore.Open(_directory, MvccStoreEngine.Options with { Watch = new WatchOptions { MaxBufferedEvents = 2 * Math.Max(WritesInFlight, MvccWorkload.WritesInFlight) } });
    }

    [IterationCleanup(Targets = [nameof(PutsAlone), nameof(PutsWithALivePrefixWatcher), nameof(PutsWithALiveReusingPrefixWatcher)])]
    public void CloseStore()
    {
        _store.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    [Benchmark(OperationsPerInvoke = LivePuts)]
    public Task PutsAlone() => PutAllAsync();

    [Benchmark(OperationsPerInvoke = LivePuts)]
    public Task PutsWithALivePrefixWatcher() => PutWhileWatchingAsync(reuseEvents: false);

    /// <summary>As <see cref="PutsWithALivePrefixWatcher"/>, the watch reusing its events (<see cref="WatchRequest.ReuseEvents"/>).</summary>
    [Benchmark(OperationsPerInvoke = LivePuts)]
    public Task PutsWithALiveReusingPrefixWatcher() => PutWhileWatchingAsync(reuseEvents: true);

    [Benchmark(OperationsPerInvoke = HistoryPuts)]
    public async Task CatchUpFromHistory()
    {
        var stopwatch = Stopwatch.StartNew();
        long events = 0;
        long last = _history!.Revision;
        await foreach (var response in _history.WatchAsync(new WatchRequest { Key = "watched/"u8.ToArray(), RangeEnd = KeyRange.PrefixEnd("watched/"u8), StartRevision = 2 }).ConfigureAwait(false))
        {
            events += response.Events.Count;
            if (response.Header.Revision >= last)
            {
                break;
            }
        }

        if (events != HistoryPuts)
        {
            throw new InvalidOperationException($"The watcher got {events} events of {HistoryPuts}.");
        }

        MvccWorkload.AppendResult($"WatchThroughput catch-up: {events:N0} events from history in {stopwatch.Elapsed.TotalSeconds:F2} s = {events / stopwatch.Elapsed.TotalSeconds:N0} events/s");
    }

    private async Task PutWhileWatchingAsync(bool reuseEvents)
    {
        using var watch = _store.Watch(new WatchRequest { Key = "watched/"u8.ToArray(), RangeEnd = KeyRange.PrefixEnd("watched/"u8), ReuseEvents = reuseEvents });
        long last = _store.Revision + LivePuts;
        long responses = 0;
        int largest = 0;
        var reader = Task.Run(async () =>
        {
            long events = 0;
            await foreach (var response in watch)
            {
                events += response.Events.Count;
                responses++;
                largest = Math.Max(largest, response.Events.Count);
                if (response.Header.Revision >= last)
                {
                    return events;
                }
            }

            return events;
        });
        await PutAllAsync().ConfigureAwait(false);
        long delivered = await reader.ConfigureAwait(false);
        LastResponses = responses;
        LastLargestResponse = largest;
        if (delivered != LivePuts)
        {
            throw new InvalidOperationException($"The watcher got {delivered} events of {LivePuts}.");
        }

        MvccWorkload.AppendResult($"WatchThroughput live{(reuseEvents ? " (reused events)" : string.Empty)}: {delivered:N0} events delivered; the watcher fell behind {_store.Watches.FellBehindCount} times; {_store.Watches.SpanBatchCount} batches reached it as spans");
    }

    private Task PutAllAsync() =>
        AwaitValueTasks
            ? MvccWorkload.RunWindowedAsync(LivePuts, WritesInFlight, i => _store.PutAsync(new PutRequest { Key = _keys[i % _keys.Length], Value = _value }))
            : MvccWorkload.RunWindowedAsync(LivePuts, WritesInFlight, i =>
                _store.PutAsync(new PutRequest { Key = _keys[i % _keys.Length], Value = _value }).AsTask());
}
