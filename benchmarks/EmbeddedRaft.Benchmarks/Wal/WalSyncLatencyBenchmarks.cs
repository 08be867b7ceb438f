using BenchmarkDotNet.Attributes;
using EmbeddedRaft.Storage.IO;
using EmbeddedRaft.Storage.Wal;

namespace EmbeddedRaft.Benchmarks.Wal;

/// <summary>
/// Target (a): one synced 1 KiB append against the disk's own 4 KiB write + fdatasync, through the
/// same <see cref="IStorageFile"/>, both appending into preallocated space as a segment does. A
/// second baseline rewrites one already-written 4 KiB block in place (no block allocation to
/// commit), the cheapest synced write the disk offers.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 5, iterationCount: 20)]
[MedianColumn]
public class WalSyncLatencyBenchmarks
{
    private const long RawFileBytes = 1L << 30;
    private readonly byte[] _block = new byte[4096];
    private readonly byte[] _payload = new byte[1024];
    private string _directory = "";
    private IStorageFile _raw = null!;
    private long _rawOffset;
    private WriteAheadLog _wal = null!;

    [GlobalSetup]
    public void Setup()
    {
        new Random(1).NextBytes(_block);
        new Random(2).NextBytes(_payload);
        _directory = BenchmarkDirectory.Create("latency");
        _raw = BenchmarkDirectory.CreateRawFile(_directory, RawFileBytes);
        _wal = WriteAheadLog.Open(PhysicalFileSystem.Instance, Path.Combine(_directory, "wal"));
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _wal.Dispose();
        _raw.Dispose();
        BenchmarkDirectory.Delete(_directory);
    }

    [Benchmark(Baseline = true, Description = "raw 4 KiB write + fdatasync")]
    public void RawWrite4KiBAndFdatasync()
    {
        _raw.Write(_rawOffset, _block);
        _raw.Flush();
        _rawOffset = (_rawOffset + _block.Length) % RawFileBytes;
    }

    [Benchmark(Description = "raw 4 KiB overwrite + fdatasync")]
    public void RawOverwrite4KiBAndFdatasync()
    {
        _raw.Write(RawFileBytes - _block.Length, _block);
        _raw.Flush();
    }

    [Benchmark(Description = "WAL synced 1 KiB append")]
    public ValueTask<WalPosition> WalSyncedAppend1KiB() => _wal.AppendAsync(1, _payload);
}
