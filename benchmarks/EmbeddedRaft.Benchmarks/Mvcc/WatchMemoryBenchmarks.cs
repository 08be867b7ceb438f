using System.Text;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using EmbeddedRaft.Mvcc;

namespace EmbeddedRaft.Benchmarks.Mvcc;

/// <summary>
/// Memory per idle watcher: 100,000 watches on distinct 16-byte keys, each with an <c>await foreach</c>
/// parked in MoveNextAsync (what an idle watcher costs a real host), measured as the growth of the
/// live managed heap after a full collection; also the same watches created but not enumerated.
/// Figures go to the console and /tmp/mvcc-bench-results.txt; Mean is the time to open one watch
/// and start its wait.
/// </summary>
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 0, iterationCount: 3, invocationCount: 1)]
public class WatchMemoryBenchmarks
{
    private const int Watchers = 100_000;

    private string _directory = null!;
    private MvccStore _store = null!;
    private byte[][] _keys = null!;

    [IterationSetup]
    public void OpenStore()
    {
        _directory = MvccWorkload.NewDirectory("watch-memory");
        _store = MvccStore.Open(_directory, MvccStoreEngine.Options);
        _keys = Enumerable.Range(0, Watchers).Select(i => Encoding.ASCII.GetBytes($"idle-key/{i:D7}")).ToArray();
    }

    [IterationCleanup]
    public void Close()
    {
        _store.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    [Benchmark(OperationsPerInvoke = Watchers)]
    public void IdleWatchers()
    {
        long before = LiveBytes();
        var watches = new WatchStream[Watchers];
        for (int i = 0; i < Watchers; i++)
        {
            watches[i] = _store.Watch(new WatchRequest { Key = _keys[i] });
        }

        long created = LiveBytes();
        var enumerators = new IAsyncEnumerator<WatchResponse>[Watchers];
        var waits = new Task<bool>[Watchers];
        for (int i = 0; i < Watchers; i++)
        {
            enumerators[i] = watches[i].GetAsyncEnumerator();
            waits[i] = enumerators[i].MoveNextAsync().AsTask();
        }

        long waiting = LiveBytes();
        MvccWorkload.AppendResult(
            $"WatchMemory: {Watchers:N0} idle watches; created, not enumerated: {(created - before) / (double)Watchers:F0} bytes each; with an await parked in MoveNextAsync: {(waiting - before) / (double)Watchers:F0} bytes each");
        foreach (var watch in watches)
        {
            watch.Dispose();
        }

        GC.KeepAlive(enumerators);
        GC.KeepAlive(waits);
    }

    private static long LiveBytes()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return GC.GetTotalMemory(forceFullCollection: true);
    }
}
