using EmbeddedRaft.Storage.IO;
using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Storage.Tests.Wal;

/// <summary>Shared helpers for the write-ahead log tests: seeds, payloads, reading a whole log.</summary>
internal static class WalTestKit
{
    public const string Directory = "/data/wal";

    /// <summary>Small segments so that a few dozen records cut many segments.</summary>
    public static WalOptions SmallSegments(long segmentSizeBytes = 4096, int maxRecordSizeBytes = 1024) =>
        new(segmentSizeBytes: segmentSizeBytes, maxRecordSizeBytes: maxRecordSizeBytes, writeBufferSizeBytes: 4096, maxBufferedBytes: 64 * 1024);

    /// <summary>The seeds a randomized test runs: WAL_SEED=N runs just N; otherwise <paramref name="count"/> seeds from <paramref name="first"/> (more with STORAGE_SOAK_SEEDS=N).</summary>
    public static IEnumerable<int> Seeds(int first, int count) => TestSeeds.Choose("WAL_SEED", "STORAGE_SOAK_SEEDS", first, count);

    /// <summary>A payload of non-zero bytes derived from <paramref name="random"/> (non-zero so that every sector piece of a frame carries data).</summary>
    public static byte[] Payload(Random random, int minLength, int maxLength)
    {
        var payload = new byte[random.Next(minLength, maxLength + 1)];
        random.NextBytes(payload);
        for (int i = 0; i < payload.Length; i++)
        {
            payload[i] = (byte)(payload[i] | 1);
        }

        return payload;
    }

    /// <summary>Every record from the start of the log, copied out of the reader's buffer.</summary>
    public static List<StoredRecord> ReadAll(WriteAheadLog log, ulong fromIndex = 0)
    {
        using var reader = log.ReadFrom(fromIndex);
        return Drain(reader);
    }

    public static List<StoredRecord> Drain(WalReader reader)
    {
        var records = new List<StoredRecord>();
        while (reader.TryReadNext(out var record))
        {
            records.Add(new StoredRecord(record.Type, record.Index, record.Payload.ToArray(), record.Position));
        }

        return records;
    }

    public static string Reproduce(int seed) => $"reproduce with WAL_SEED={seed}";

    /// <summary>A new disk holding, durably, the current bytes of <paramref name="paths"/> of <paramref name="source"/> (for trying many faults on one log).</summary>
    public static FaultInjectingFileSystem CloneDurably(FaultInjectingFileSystem source, IEnumerable<string> paths, int seed)
    {
        var copy = new FaultInjectingFileSystem(seed);
        copy.CreateDirectory(Directory);
        foreach (string path in paths)
        {
            using var from = source.Open(path, FileOpenMode.ReadOnly);
            var bytes = new byte[from.Length];
            from.Read(0, bytes);
            using var to = copy.Open(path, FileOpenMode.CreateNew);
            to.Write(0, bytes);
            to.Flush();
        }

        copy.SyncDirectory(Directory);
        return copy;
    }

    /// <summary>
    /// A payload of <paramref name="minLength"/>..<paramref name="maxLength"/> non-zero bytes (at
    /// least 1024) holding one run of 1024 zeros at a random place. A run of 1024 bytes always
    /// covers a whole 512-byte sector, so the record's frame has a zero piece wherever it lands:
    /// the records a torn write is hardest to tell apart from.
    /// </summary>
    public static byte[] PayloadWithZeroPiece(Random random, int minLength, int maxLength)
    {
        var payload = Payload(random, Math.Max(minLength, 1024), maxLength);
        int start = random.Next(0, payload.Length - 1024 + 1);
        payload.AsSpan(start, 1024).Clear();
        return payload;
    }
}

/// <summary>A record as appended or as read back.</summary>
internal sealed record StoredRecord(byte Type, ulong Index, byte[] Payload, WalPosition Position)
{
    public bool SameContent(StoredRecord other) => Type == other.Type && Index == other.Index && Payload.AsSpan().SequenceEqual(other.Payload);
}
