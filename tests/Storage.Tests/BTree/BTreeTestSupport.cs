using EmbeddedRaft.Storage.BTree;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Storage.Tests.BTree;

/// <summary>Seeds, models and helpers shared by the B+tree tests.</summary>
internal static class BTreeTestSupport
{
    public const string Directory = "/db";
    public const string DatabasePath = "/db/tree.db";

    /// <summary>True when BTREE_SOAK=1: run many more seeds and operations.</summary>
    public static bool Soak => Environment.GetEnvironmentVariable("BTREE_SOAK") == "1";

    /// <summary>
    /// The seeds to run: BTREE_SEED=N runs only N; otherwise <paramref name="count"/> seeds from
    /// <paramref name="first"/>, moved up by BTREE_SEED_OFFSET=N when set (every seeded B+tree test
    /// has its own first seed, so a soak reaches seeds never run before by one offset for all of them).
    /// </summary>
    public static IEnumerable<int> Seeds(int first, int count)
    {
        if (int.TryParse(Environment.GetEnvironmentVariable("BTREE_SEED"), out int only))
        {
            return [only];
        }

        string? offset = Environment.GetEnvironmentVariable("BTREE_SEED_OFFSET");
        if (!string.IsNullOrEmpty(offset))
        {
            first += int.TryParse(offset, out int parsed)
                ? parsed
                : throw new InvalidOperationException($"Environment variable BTREE_SEED_OFFSET='{offset}' is not a whole number.");
        }

        return Enumerable.Range(first, count);
    }

    public static FaultInjectingFileSystem NewDisk(int seed)
    {
        var fs = new FaultInjectingFileSystem(seed);
        fs.CreateDirectory(Directory);
        return fs;
    }

    public static BTreeOptions SmallPages => new() { PageSizeBytes = 1024, MaxKeySizeBytes = 64, PageCacheSizeBytes = 64 * 1024 };

    public static SortedDictionary<byte[], byte[]> NewModel() => new(ByteOrder.Instance);

    public static Dictionary<string, SortedDictionary<byte[], byte[]>> Copy(Dictionary<string, SortedDictionary<byte[], byte[]>> model)
    {
        var copy = new Dictionary<string, SortedDictionary<byte[], byte[]>>(StringComparer.Ordinal);
        foreach (var (name, bucket) in model)
        {
            copy.Add(name, new SortedDictionary<byte[], byte[]>(bucket, ByteOrder.Instance));
        }

        return copy;
    }

    /// <summary>Everything the database holds, read through cursors.</summary>
    public static Dictionary<string, SortedDictionary<byte[], byte[]>> ReadAll(BTreeDatabase db)
    {
        using var tx = db.BeginRead();
        return ReadAll(tx);
    }

    public static Dictionary<string, SortedDictionary<byte[], byte[]>> ReadAll(Transaction tx)
    {
        var all = new Dictionary<string, SortedDictionary<byte[], byte[]>>(StringComparer.Ordinal);
        foreach (string name in tx.ListBuckets())
        {
            var bucket = tx.OpenBucket(name)!;
            var contents = NewModel();
            var cursor = bucket.CreateCursor();
            for (bool more = cursor.First(); more; more = cursor.Next())
            {
                contents.Add(cursor.Key.ToArray(), cursor.Value.ToArray());
            }

            Assert.That(contents, Has.Count.EqualTo(bucket.Count), $"bucket '{name}': Count disagrees with a full scan");
            all.Add(name, contents);
        }

        return all;
    }

    /// <summary>A readable difference between two database states, or null when they are equal.</summary>
    public static string? Difference(Dictionary<string, SortedDictionary<byte[], byte[]>> expected, Dictionary<string, SortedDictionary<byte[], byte[]>> actual)
    {
        var names = expected.Keys.Union(actual.Keys).OrderBy(n => n, StringComparer.Ordinal);
        foreach (string name in names)
        {
            if (!expected.TryGetValue(name, out var e))
            {
                return $"unexpected bucket '{name}'";
            }

            if (!actual.TryGetValue(name, out var a))
            {
                return $"missing bucket '{name}'";
            }

            if (e.Count != a.Count)
            {
                return $"bucket '{name}': {a.Count} keys, expected {e.Count}";
            }

            foreach (var ((ek, ev), (ak, av)) in e.Zip(a))
            {
                if (!ek.AsSpan().SequenceEqual(ak) || !ev.AsSpan().SequenceEqual(av))
                {
                    return $"bucket '{name}': key {Convert.ToHexString(ak)} (value {av.Length} bytes), expected {Convert.ToHexString(ek)} (value {ev.Length} bytes)";
                }
            }
        }

        return null;
    }

    public static byte[] RandomBytes(Random random, int length)
    {
        var bytes = new byte[length];
        random.NextBytes(bytes);
        return bytes;
    }
}
