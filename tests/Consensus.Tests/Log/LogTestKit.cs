using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Log;

/// <summary>Shared helpers for the durable log tests: options, entries, snapshot data, seeds.</summary>
internal static class LogTestKit
{
    public const string LogDirectory = "/data/raft";

    /// <summary>Caller-thread WAL (deterministic file-system calls) with small segments, so that a few hundred entries cut many.</summary>
    public static DurableRaftLogOptions Options(long cachedEntryBytes = DurableRaftLogOptions.DefaultCachedEntryBytes, ulong retainedEntries = 0, long segmentSizeBytes = 8192) => new()
    {
        Wal = new WalOptions
        {
            Threading = WalThreading.CallerThread,
            SegmentSizeBytes = segmentSizeBytes,
            MaxRecordSizeBytes = 2048,
            WriteBufferSizeBytes = 4096,
            MaxBufferedBytes = 64 * 1024,
        },
        CachedEntryBytes = cachedEntryBytes,
        RetainedEntries = retainedEntries,
    };

    /// <summary>The seeds a randomized test runs: RAFT_LOG_SEED=N replays N; STORAGE_SOAK_SEEDS=N runs N seeds.</summary>
    public static IReadOnlyList<int> Seeds(int first, int count) => TestSeeds.Choose("RAFT_LOG_SEED", "STORAGE_SOAK_SEEDS", first, count);

    public static string Reproduce(int seed) => $"reproduce with RAFT_LOG_SEED={seed}";

    /// <summary>Entries <paramref name="first"/>..<paramref name="last"/> of <paramref name="term"/> whose data names them (so a mix-up shows).</summary>
    public static Entry[] Entries(ulong first, ulong last, ulong term, int dataBytes = 16)
    {
        var entries = new Entry[last - first + 1];
        for (ulong index = first; index <= last; index++)
        {
            entries[index - first] = MakeEntry(index, term, dataBytes);
        }

        return entries;
    }

    public static Entry MakeEntry(ulong index, ulong term, int dataBytes = 16)
    {
        var data = new byte[dataBytes];
        var random = new Random((int)(index * 31 + term));
        random.NextBytes(data);
        return new Entry(term, index, EntryType.Normal, data);
    }

    public static async Task<List<Entry>> ReadAllAsync(DurableRaftLog log)
    {
        await Task.CompletedTask;
        var first = log.FirstIndex();
        var last = log.LastIndex();
        return first > last ? [] : log.Entries(first, last + 1, ulong.MaxValue).ToArray().ToList();
    }

    /// <summary>Saves <paramref name="bytes"/> bytes of data derived from the snapshot's index as its data.</summary>
    public static ValueTask SaveDataAsync(DurableRaftLog log, SnapshotMetadata metadata, int bytes = 1000) =>
        log.SaveSnapshotDataAsync(metadata, (stream, token) => stream.WriteAsync(SnapshotData(metadata.Index, bytes), token));

    public static byte[] SnapshotData(ulong index, int bytes)
    {
        var data = new byte[bytes];
        new Random((int)index).NextBytes(data);
        return data;
    }

    public static async Task<byte[]> ReadSnapshotDataAsync(DurableRaftLog log, ulong index)
    {
        await using var stream = await log.OpenSnapshotDataAsync(index);
        using var copy = new MemoryStream();
        await stream.CopyToAsync(copy);
        return copy.ToArray();
    }
}
