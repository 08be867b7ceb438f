using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using EmbeddedRaft.Storage.IO;
using EmbeddedRaft.Storage.Wal;

namespace EmbeddedRaft.Benchmarks.Wal;

/// <summary>
/// Target (c): reading a whole 256 MiB log (1 KiB records, page cache warm) against reading the
/// same segment files raw in 1 MiB blocks through the same file system.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 2, iterationCount: 10)]
[MedianColumn]
public class WalReadBenchmarks
{
    public const int LogBytes = 256 * 1024 * 1024;
    private string _directory = "";
    private WriteAheadLog _wal = null!;
    private readonly byte[] _buffer = new byte[1024 * 1024];

    [GlobalSetup]
    public void Setup()
    {
        _directory = BenchmarkDirectory.Create("read");
        _wal = WriteAheadLog.Open(PhysicalFileSystem.Instance, Path.Combine(_directory, "wal"));
        var payload = new byte[1024];
        new Random(3).NextBytes(payload);
        for (int i = 1; i <= LogBytes / payload.Length; i++)
        {
            _wal.AppendAsync(1, payload, (ulong)i, sync: false).AsTask().GetAwaiter().GetResult();
        }

        _wal.SyncAsync().AsTask().GetAwaiter().GetResult();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _wal.Dispose();
        BenchmarkDirectory.Delete(_directory);
    }

    [Benchmark(Baseline = true, Description = "raw read of the segment files")]
    public long RawRead()
    {
        long total = 0;
        foreach (string path in _wal.SegmentPaths)
        {
            using var file = PhysicalFileSystem.Instance.Open(path, FileOpenMode.ReadOnly);
            long length = file.Length;
            for (long offset = 0; offset < length; offset += _buffer.Length)
            {
                total += file.Read(offset, _buffer);
            }
        }

        return total;
    }

    [Benchmark(Description = "WAL read of every record")]
    public long WalReadAll()
    {
        long payloadBytes = 0;
        using var reader = _wal.ReadFrom(0);
        while (reader.TryReadNext(out var record))
        {
            payloadBytes += record.Payload.Length;
        }

        return payloadBytes;
    }
}
