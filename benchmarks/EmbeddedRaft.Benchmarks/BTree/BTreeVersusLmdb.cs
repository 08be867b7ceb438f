using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;

namespace EmbeddedRaft.Benchmarks.BTree;

/// <summary>
/// Our B+tree and LMDB side by side in one run, on the real disk, on the workload:
/// 1,000,000 keys of 16 bytes with 100-byte values, synced commits of 10,000 keys. Each benchmark
/// reports per key (OperationsPerInvoke), so Mean is time per key and Allocated is bytes per key.
/// File sizes (after random inserts, and after compacting that file) go to the console and to
/// /tmp/btree-bench-sizes.txt. See docs/benchmarks.md for the figures and the command.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(SideBySideConfig))]
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 1, iterationCount: 5, invocationCount: 1)]
public class BTreeVersusLmdb
{
    public const string Ours = "EmbeddedRaft";
    public const string Reference = "LMDB";
    public const int KeySizeBytes = 16;
    public const int ValueSizeBytes = 100;
    public const int KeyCount = 1_000_000;
    public const int KeysPerCommit = 10_000;
    private const int ReadsPerInvoke = 1_000_000;

    private byte[] _keys = null!;
    private int[] _sequential = null!;
    private int[] _shuffled = null!;
    private byte[] _value = null!;
    private string _directory = null!;
    private IKeyValueEngine _engine = null!;

    [Params(Ours, Reference)]
    public string Engine { get; set; } = Ours;

    [GlobalSetup]
    public void CreateWorkload()
    {
        _keys = Workload.Keys(KeyCount);
        _sequential = Workload.Sequential(KeyCount);
        _shuffled = Workload.Shuffled(KeyCount, seed: 42);
        _value = Workload.Value();
    }

    [IterationSetup(Targets = [nameof(RandomPointReads), nameof(FullOrderedScan)])]
    public void OpenFilledDatabase()
    {
        _directory = Workload.NewDirectory(Engine);
        _engine = Workload.Create(Engine, _directory);
        _engine.Insert(_keys, _sequential, _value, 100_000, append: true);

        // Warm: both engines serve reads from memory (LMDB from the OS page cache through its map,
        // ours from its page cache), so a cold first pass is not what is being compared.
        _engine.Scan();
        _engine.Read(_keys, _shuffled);
    }

    [IterationSetup(Targets = [nameof(SequentialInserts), nameof(RandomInserts)])]
    public void OpenEmptyDatabase()
    {
        _directory = Workload.NewDirectory(Engine);
        _engine = Workload.Create(Engine, _directory);
    }

    [IterationCleanup(Targets = [nameof(RandomInserts)])]
    public void RecordSizesAndClose()
    {
        long raw = (long)KeyCount * (KeySizeBytes + ValueSizeBytes);
        long afterRandom = _engine.FileSizeBytes;
        string compacted = "";
        if (_engine is EmbeddedRaftEngine ours)
        {
            string destination = Path.Combine(_directory, "compacted.db");
            ours.Database.Compact(Storage.IO.PhysicalFileSystem.Instance, destination, EmbeddedRaftEngine.Options);
            long afterCompaction = new FileInfo(destination).Length;
            compacted = $", after compaction {afterCompaction:N0} bytes ({(double)afterCompaction / raw:F2}x raw)";
        }

        Workload.AppendResult($"{Engine}: file after {KeyCount:N0} random inserts {afterRandom:N0} bytes ({(double)afterRandom / raw:F2}x raw {raw:N0}){compacted}");
        Close();
    }

    [IterationCleanup(Targets = [nameof(RandomPointReads), nameof(FullOrderedScan), nameof(SequentialInserts)])]
    public void Close()
    {
        _engine.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    [Benchmark(OperationsPerInvoke = ReadsPerInvoke)]
    public long RandomPointReads() => _engine.Read(_keys, _shuffled);

    [Benchmark(OperationsPerInvoke = KeyCount)]
    public long FullOrderedScan() => _engine.Scan();

    [Benchmark(OperationsPerInvoke = KeyCount)]
    public void SequentialInserts() => _engine.Insert(_keys, _sequential, _value, KeysPerCommit, append: true);

    [Benchmark(OperationsPerInvoke = KeyCount)]
    public void RandomInserts() => _engine.Insert(_keys, _shuffled, _value, KeysPerCommit, append: false);
}
