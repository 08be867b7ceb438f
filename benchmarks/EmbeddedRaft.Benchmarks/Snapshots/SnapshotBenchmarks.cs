using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using EmbeddedRaft.Benchmarks.Wal;
using EmbeddedRaft.Storage.IO;
using EmbeddedRaft.Storage.Snapshots;

namespace EmbeddedRaft.Benchmarks.Snapshots;

/// <summary>
/// Saving and loading a 64 MiB snapshot against the raw disk doing the same IO: 64 MiB written in
/// 1 MiB blocks and one fdatasync (a save adds chunk CRCs, the rename and a directory fsync), and
/// the same file read back in 1 MiB blocks (a load reads it twice: verify, then stream).
/// </summary>
[MemoryDiagnoser]
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 2, iterationCount: 10)]
[MedianColumn]
public class SnapshotBenchmarks
{
    public const int SnapshotBytes = 64 * 1024 * 1024;
    private readonly byte[] _block = new byte[1024 * 1024];
    private string _directory = "";
    private Snapshotter _snapshotter = null!;
    private ulong _index;
    private string _newestPath = "";

    [GlobalSetup]
    public void Setup()
    {
        new Random(5).NextBytes(_block);
        _directory = BenchmarkDirectory.Create("snapshot");
        _snapshotter = new Snapshotter(PhysicalFileSystem.Instance, Path.Combine(_directory, "snap"), new SnapshotOptions { RetainCount = 2 });
        _newestPath = SaveAsync().AsTask().GetAwaiter().GetResult();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _snapshotter.Dispose();
        BenchmarkDirectory.Delete(_directory);
    }

    [Benchmark(Baseline = true, Description = "raw write 64 MiB + fdatasync")]
    public void RawWrite()
    {
        using var file = PhysicalFileSystem.Instance.Open(Path.Combine(_directory, "raw.bin"), FileOpenMode.OpenOrCreate);
        file.SetLength(0);
        for (int offset = 0; offset < SnapshotBytes; offset += _block.Length)
        {
            file.Write(offset, _block);
        }

        file.Flush();
    }

    [Benchmark(Description = "snapshot save 64 MiB")]
    public ValueTask<string> SaveAsync() => _snapshotter.SaveAsync(new SnapshotFileMetadata(++_index, 1, [1, 2, 3]), async (stream, token) =>
    {
        for (int written = 0; written < SnapshotBytes; written += _block.Length)
        {
            await stream.WriteAsync(_block, token);
        }
    }, CancellationToken.None);

    [Benchmark(Description = "raw read 64 MiB (page cache)")]
    public long RawRead()
    {
        using var file = PhysicalFileSystem.Instance.Open(_newestPath, FileOpenMode.ReadOnly);
        long total = 0;
        for (long offset = 0; offset < file.Length; offset += _block.Length)
        {
            total += file.Read(offset, _block);
        }

        return total;
    }

    [Benchmark(Description = "snapshot load 64 MiB (verify + stream)")]
    public async Task<long> Load()
    {
        using var snapshot = (await _snapshotter.LoadNewestAsync()).Snapshot!;
        long total = 0;
        int read;
        while ((read = snapshot.Data.Read(_block)) > 0)
        {
            total += read;
        }

        return total;
    }
}
