using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using EmbeddedRaft.Benchmarks.BTree;

namespace EmbeddedRaft.Benchmarks.Mvcc;

/// <summary>
/// MvccStore and the raw B+tree side by side in one run, on the workload: 1,000,000 keys of
/// 16 bytes with 100-byte values on the real disk, writes durable in groups of 10,000. Each benchmark
/// reports per operation (OperationsPerInvoke): Mean is time per put, per read, per range of 1,000
/// keys, per txn, and per key rebuilt on open. Memory per key of the opened store goes to the console
/// and /tmp/mvcc-bench-results.txt. See docs/benchmarks.md ("MvccStore") for figures and command.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(SideBySideConfig))]
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 1, iterationCount: 3, invocationCount: 1)]
public class MvccStoreVersusBTree
{
    private const int KeyCount = MvccWorkload.KeyCount;
    private const int ReadsPerInvoke = 200_000;
    private const int RangeLength = 1_000;
    private const int RangesPerInvoke = 1_000;
    private const int TxnsPerInvoke = 200_000;

    private byte[] _keys = null!;
    private int[] _sequential = null!;
    private int[] _shuffled = null!;
    private int[] _reads = null!;
    private int[] _rangeStarts = null!;
    private int[] _txnKeys = null!;
    private byte[] _value = null!;
    private string _directory = null!;
    private IMvccWorkloadEngine _engine = null!;

    [Params(MvccWorkload.Store, MvccWorkload.RawBTree)]
    public string Engine { get; set; } = MvccWorkload.Store;

    [GlobalSetup]
    public void CreateWorkload()
    {
        _keys = Workload.Keys(KeyCount + RangeLength);
        _sequential = Workload.Sequential(KeyCount);
        _shuffled = Workload.Shuffled(KeyCount, seed: 42);
        _reads = _shuffled[..ReadsPerInvoke];
        _txnKeys = Workload.Shuffled(KeyCount, seed: 7)[..TxnsPerInvoke];
        var random = new Random(11);
        _rangeStarts = Enumerable.Range(0, RangesPerInvoke).Select(_ => random.Next(KeyCount - RangeLength)).ToArray();
        _value = Workload.Value();
    }

    /// <summary>The read, txn and open benchmarks start from 1,000,000 keys written in random order
    /// (loaded once per benchmark: each iteration reads or overwrites what is there).</summary>
    [GlobalSetup(Targets = [nameof(SingleKeyRanges), nameof(RangesOf1000Keys), nameof(CompareAndPutTxns), nameof(OpenRebuildingIndex)])]
    public void OpenFilled()
    {
        CreateWorkload();
        _directory = MvccWorkload.NewDirectory(Engine);
        _engine = MvccWorkload.CreateAsync(Engine, _directory).GetAwaiter().GetResult();
        _engine.PutAllAsync(_keys, _shuffled, _value).GetAwaiter().GetResult();
        _engine.GetEach(_keys, _shuffled);
    }

    [GlobalCleanup(Targets = [nameof(SingleKeyRanges), nameof(RangesOf1000Keys), nameof(CompareAndPutTxns)])]
    public void CloseFilled()
    {
        _engine.DisposeAsync().AsTask().GetAwaiter().GetResult();
        Directory.Delete(_directory, recursive: true);
    }

    /// <summary>After the open benchmark: the managed memory an opened MvccStore of 1,000,000 keys
    /// holds, per key, measured with the B+tree's page cache at its minimum (64 KiB) so what remains is
    /// the key index and the store's own structures.</summary>
    [GlobalCleanup(Target = nameof(OpenRebuildingIndex))]
    public void MeasureMemoryAndClose()
    {
        _engine.DisposeAsync().AsTask().GetAwaiter().GetResult();
        if (Engine == MvccWorkload.Store)
        {
            long before = GC.GetTotalMemory(forceFullCollection: true);
            var options = MvccStoreEngine.Options with { BTree = EmbeddedRaftEngine.Options with { PageCacheSizeBytes = Storage.BTree.BTreeOptions.MinPageCacheSizeBytes } };
            using (var store = EmbeddedRaft.Mvcc.MvccStore.Open(_directory, options))
            {
                long after = GC.GetTotalMemory(forceFullCollection: true);
                MvccWorkload.AppendResult($"MvccStore: managed memory of an open store with {KeyCount:N0} keys (16 B keys, one revision each, 64 KiB page cache): {after - before:N0} bytes, {(double)(after - before) / KeyCount:F1} bytes per key (revision {store.Revision:N0})");
            }
        }

        Directory.Delete(_directory, recursive: true);
    }

    [IterationSetup(Targets = [nameof(BatchedPutsSequentialKeys), nameof(BatchedPutsRandomKeys)])]
    public void OpenEmpty()
    {
        _directory = MvccWorkload.NewDirectory(Engine);
        _engine = MvccWorkload.CreateAsync(Engine, _directory).GetAwaiter().GetResult();
    }

    /// <summary>Closes the engine and prints the iteration's B+tree commits and the client's waits beside the row
    /// (console and /tmp/mvcc-bench-results.txt): the time per put follows how many commits the puts took.</summary>
    [IterationCleanup(Targets = [nameof(BatchedPutsSequentialKeys), nameof(BatchedPutsRandomKeys)])]
    public void CloseEmpty()
    {
        long waits = _engine.LastPutWaits;
        long commits = _engine.CloseCountingCommitsAsync().GetAwaiter().GetResult();
        Directory.Delete(_directory, recursive: true);
        MvccWorkload.AppendResult($"{Engine} batched puts: {commits:N0} B+tree commits ({(commits == 0 ? 0 : KeyCount / commits):N0} puts per commit), the client waited {waits:N0} times");
    }

    [Benchmark(OperationsPerInvoke = KeyCount)]
    public Task BatchedPutsSequentialKeys() => _engine.PutAllAsync(_keys, _sequential, _value);

    [Benchmark(OperationsPerInvoke = KeyCount)]
    public Task BatchedPutsRandomKeys() => _engine.PutAllAsync(_keys, _shuffled, _value);

    [Benchmark(OperationsPerInvoke = ReadsPerInvoke)]
    public long SingleKeyRanges() => _engine.GetEach(_keys, _reads);

    [Benchmark(OperationsPerInvoke = RangesPerInvoke)]
    public long RangesOf1000Keys() => _engine.RangeEach(_keys, _rangeStarts, RangeLength);

    [Benchmark(OperationsPerInvoke = TxnsPerInvoke)]
    public Task CompareAndPutTxns() => _engine.CompareAndPutAllAsync(_keys, _txnKeys, _value);

    /// <summary>Close and open: MvccStore rebuilds its key index of 1,000,000 keys (target: at most
    /// 2 s); the raw tree opens and reads every entry once. Per key.</summary>
    [Benchmark(OperationsPerInvoke = KeyCount)]
    public Task OpenRebuildingIndex() => _engine.ReopenAsync();
}
