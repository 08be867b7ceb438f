using BenchmarkDotNet.Attributes;
using EmbeddedRaft.Benchmarks.Wal;
using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Storage.IO;
using EmbeddedRaft.Storage.Wal;

namespace EmbeddedRaft.Benchmarks.Consensus;

/// <summary>
/// <see cref="DurableRaftLog.SaveAsync"/> of 1 KiB entries, synced, at 1, 16 and 256 entries per
/// call (a Ready's batch), against the raw write-ahead log doing the same records (the batch
/// appended unsynced, then one sync) on the real disk. Reported per entry
/// (OperationsPerInvoke = batch size): the difference is what the Raft log adds (encoding, the
/// in-memory index and cache, the hard-state record).
/// </summary>
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 15)]
[MedianColumn]
[MemoryDiagnoser]
public class DurableRaftLogSaveBenchmarks
{
    private readonly byte[] _data = new byte[1024];
    private string _directory = "";
    private DurableRaftLog _log = null!;
    private WriteAheadLog _wal = null!;
    private Entry[] _batch = [];
    private byte[][] _payloads = [];
    private ulong _next = 1;

    /// <summary>Entries per SaveAsync.</summary>
    [Params(1, 16, 256)]
    public int BatchSize { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        new Random(1).NextBytes(_data);
        _directory = BenchmarkDirectory.Create("raftlog-save");
        _log = DurableRaftLog.OpenAsync(PhysicalFileSystem.Instance, Path.Combine(_directory, "log")).AsTask().GetAwaiter().GetResult();
        _wal = WriteAheadLog.Open(PhysicalFileSystem.Instance, Path.Combine(_directory, "raw-wal"));
        _batch = new Entry[BatchSize];
        _payloads = new byte[BatchSize][];
        for (int i = 0; i < BatchSize; i++)
        {
            _payloads[i] = MessageCodec.EncodeEntry(new Entry(1, (ulong)i + 1, EntryType.Normal, _data));
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _log.Dispose();
        _wal.Dispose();
        BenchmarkDirectory.Delete(_directory);
    }

    [Benchmark(Baseline = true, Description = "raw WAL: batch of encoded 1 KiB entries + one sync")]
    public async Task RawWalAppend()
    {
        for (int i = 0; i < _payloads.Length; i++)
        {
            await _wal.AppendAsync(1, _payloads[i], (ulong)i + 1, sync: false);
        }

        await _wal.SyncAsync();
    }

    [Benchmark(Description = "DurableRaftLog.SaveAsync(hard state, batch of 1 KiB entries, sync)")]
    public async Task SaveAsync()
    {
        for (int i = 0; i < _batch.Length; i++)
        {
            _batch[i] = new Entry(1, _next + (ulong)i, EntryType.Normal, _data);
        }

        _next += (ulong)_batch.Length;
        await _log.SaveAsync(new HardState(1, 1, _next - 1), _batch, sync: true);
    }
}
