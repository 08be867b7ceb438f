using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using EmbeddedRaft.Benchmarks.Wal;
using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Benchmarks.Consensus;

/// <summary>
/// Restart time of a <see cref="DurableRaftLog"/> on the real disk: replaying 1,000,000 entries of
/// 128 B or 1 KiB (open = scan and check every record, build the index of positions, read the
/// newest 64 MiB back into the cache), and loading a 1 GiB snapshot (open, which checks the
/// snapshot end to end, then stream its data to a null sink as a state machine restore would).
/// The data is written once per parameter in the global setup, under the temp directory, and
/// deleted in the cleanup. The page cache is warm (as for a process restart; a machine restart
/// reads from the device and is slower).
/// </summary>
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 1, iterationCount: 5)]
[MedianColumn]
[MemoryDiagnoser]
public class RestartBenchmarks
{
    private const int EntryCount = 1_000_000;
    private const long SnapshotBytes = 1L << 30;
    private string _directory = "";

    /// <summary>The entries' data size.</summary>
    [Params(128, 1024)]
    public int EntryBytes { get; set; }

    [GlobalSetup(Target = nameof(ReplayOneMillionEntries))]
    public void SetupEntries()
    {
        _directory = BenchmarkDirectory.Create("restart-entries");
        WriteEntriesAsync().AsTask().GetAwaiter().GetResult();
    }

    [GlobalSetup(Target = nameof(LoadOneGiBSnapshot))]
    public void SetupSnapshot()
    {
        _directory = BenchmarkDirectory.Create("restart-snapshot");
        WriteSnapshotAsync().AsTask().GetAwaiter().GetResult();
    }

    [GlobalCleanup]
    public void Cleanup() => BenchmarkDirectory.Delete(_directory);

    [Benchmark(Description = "open: replay 1M entries")]
    public async Task<ulong> ReplayOneMillionEntries()
    {
        await using var log = await DurableRaftLog.OpenAsync(PhysicalFileSystem.Instance, _directory);
        return log.LastIndex();
    }

    [Benchmark(Description = "open + stream a 1 GiB snapshot to a null sink")]
    public async Task<ulong> LoadOneGiBSnapshot()
    {
        await using var log = await DurableRaftLog.OpenAsync(PhysicalFileSystem.Instance, _directory);
        var snapshot = log.NewestSnapshot!;
        await using (var data = await log.OpenSnapshotDataAsync(snapshot.Index))
        {
            await data.CopyToAsync(Stream.Null);
        }

        return snapshot.Index;
    }

    private async ValueTask WriteEntriesAsync()
    {
        await using var log = await DurableRaftLog.OpenAsync(PhysicalFileSystem.Instance, _directory);
        await log.BootstrapAsync(new ConfState([1, 2, 3]));
        var data = new byte[EntryBytes];
        new Random(1).NextBytes(data);
        var batch = new Entry[1000];
        for (ulong first = 1; first <= EntryCount; first += (ulong)batch.Length)
        {
            for (int i = 0; i < batch.Length; i++)
            {
                batch[i] = new Entry(1, first + (ulong)i, EntryType.Normal, data);
            }

            ulong last = first + (ulong)batch.Length - 1;
            await log.SaveAsync(new HardState(1, 1, last), batch, sync: true);
        }
    }

    private async ValueTask WriteSnapshotAsync()
    {
        await using var log = await DurableRaftLog.OpenAsync(PhysicalFileSystem.Instance, _directory);
        await log.BootstrapAsync(new ConfState([1, 2, 3]));
        var entries = Enumerable.Range(1, 100).Select(i => new Entry(1, (ulong)i, EntryType.Normal, new byte[16])).ToArray();
        await log.SaveAsync(new HardState(1, 1, 100), entries, sync: true);
        var metadata = new SnapshotMetadata(100, 1, new ConfState([1, 2, 3]));
        var chunk = new byte[1 << 20];
        new Random(2).NextBytes(chunk);
        await log.SaveSnapshotDataAsync(metadata, async (stream, token) =>
        {
            for (long written = 0; written < SnapshotBytes; written += chunk.Length)
            {
                await stream.WriteAsync(chunk, token);
            }
        });
        await log.CompactAsync(metadata);
    }
}
