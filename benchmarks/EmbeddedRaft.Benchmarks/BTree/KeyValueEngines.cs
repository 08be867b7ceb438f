using EmbeddedRaft.Storage.BTree;
using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Benchmarks.BTree;

/// <summary>The workload of the side-by-side benchmarks, run the same way on each engine.</summary>
internal interface IKeyValueEngine : IDisposable
{
    /// <summary>Inserts the keys in the order given, <paramref name="perCommit"/> per synced commit.</summary>
    void Insert(byte[] keys, int[] order, ReadOnlySpan<byte> value, int perCommit, bool append);

    /// <summary>Looks up each key of <paramref name="order"/> in one read transaction; returns the bytes seen (so nothing is optimised away).</summary>
    long Read(byte[] keys, int[] order);

    /// <summary>Walks every key in order in one read transaction; returns the number of entries.</summary>
    long Scan();

    /// <summary>Bytes the engine's file occupies.</summary>
    long FileSizeBytes { get; }
}

/// <summary>Our B+tree on the real disk.</summary>
internal sealed class EmbeddedRaftEngine : IKeyValueEngine
{
    private const string BucketName = "bench";
    private readonly BTreeDatabase _db;

    public EmbeddedRaftEngine(string directory)
    {
        Path = System.IO.Path.Combine(directory, "tree.db");
        _db = BTreeDatabase.Open(PhysicalFileSystem.Instance, Path, Options);
        using var tx = _db.BeginWrite();
        tx.CreateBucketIfNotExists(BucketName);
        tx.Commit();
    }

    /// <summary>4 KiB pages (as LMDB's); a page cache big enough for the whole file, as LMDB's map is.</summary>
    public static BTreeOptions Options { get; } = new() { PageSizeBytes = 4096, PageCacheSizeBytes = 2L << 30 };

    public string Path { get; }

    public BTreeDatabase Database => _db;

    public long FileSizeBytes => new FileInfo(Path).Length;

    public void Insert(byte[] keys, int[] order, ReadOnlySpan<byte> value, int perCommit, bool append)
    {
        for (int start = 0; start < order.Length; start += perCommit)
        {
            using var tx = _db.BeginWrite();
            var bucket = tx.OpenBucket(BucketName)!;
            int end = Math.Min(order.Length, start + perCommit);
            for (int i = start; i < end; i++)
            {
                bucket.Put(keys.AsSpan(order[i] * BTreeVersusLmdb.KeySizeBytes, BTreeVersusLmdb.KeySizeBytes), value);
            }

            tx.Commit();
        }
    }

    public long Read(byte[] keys, int[] order)
    {
        using var tx = _db.BeginRead();
        var bucket = tx.OpenBucket(BucketName)!;
        long bytes = 0;
        foreach (int k in order)
        {
            if (bucket.TryGet(keys.AsSpan(k * BTreeVersusLmdb.KeySizeBytes, BTreeVersusLmdb.KeySizeBytes), out var found))
            {
                bytes += found.Length;
            }
        }

        return bytes;
    }

    public long Scan()
    {
        using var tx = _db.BeginRead();
        var cursor = tx.OpenBucket(BucketName)!.CreateCursor();
        long count = 0;
        for (bool more = cursor.First(); more; more = cursor.Next())
        {
            count += cursor.Value.Length > 0 ? 1 : 0;
        }

        return count;
    }

    public void Dispose() => _db.Dispose();
}

/// <summary>LMDB through P/Invoke, default (synced) environment flags, 4 KiB pages.</summary>
internal sealed class LmdbEngine : IKeyValueEngine
{
    private readonly nint _env;
    private readonly uint _dbi;

    public LmdbEngine(string directory)
    {
        Directory = directory;
        Lmdb.Check(Lmdb.EnvCreate(out _env), "mdb_env_create");
        Lmdb.Check(Lmdb.EnvSetMapSize(_env, (nuint)16 << 30), "mdb_env_set_mapsize");
        Lmdb.Check(Lmdb.EnvOpen(_env, directory, 0, 0x1B6), "mdb_env_open");
        Lmdb.Check(Lmdb.TxnBegin(_env, 0, 0, out nint txn), "mdb_txn_begin");
        Lmdb.Check(Lmdb.DbiOpen(txn, 0, Lmdb.Create, out _dbi), "mdb_dbi_open");
        Lmdb.Check(Lmdb.TxnCommit(txn), "mdb_txn_commit");
    }

    public string Directory { get; }

    public long FileSizeBytes => new FileInfo(System.IO.Path.Combine(Directory, "data.mdb")).Length;

    public unsafe void Insert(byte[] keys, int[] order, ReadOnlySpan<byte> value, int perCommit, bool append)
    {
        fixed (byte* keyBase = keys)
        fixed (byte* valueBytes = value)
        {
            for (int start = 0; start < order.Length; start += perCommit)
            {
                Lmdb.Check(Lmdb.TxnBegin(_env, 0, 0, out nint txn), "mdb_txn_begin");
                int end = Math.Min(order.Length, start + perCommit);
                for (int i = start; i < end; i++)
                {
                    var k = new Lmdb.Value { Size = BTreeVersusLmdb.KeySizeBytes, Data = (nint)(keyBase + (order[i] * BTreeVersusLmdb.KeySizeBytes)) };
                    var v = new Lmdb.Value { Size = (nuint)value.Length, Data = (nint)valueBytes };
                    Lmdb.Check(Lmdb.Put(txn, _dbi, ref k, ref v, append ? Lmdb.Append : 0), "mdb_put");
                }

                Lmdb.Check(Lmdb.TxnCommit(txn), "mdb_txn_commit");
            }
        }
    }

    public unsafe long Read(byte[] keys, int[] order)
    {
        Lmdb.Check(Lmdb.TxnBegin(_env, 0, Lmdb.ReadOnly, out nint txn), "mdb_txn_begin");
        long bytes = 0;
        fixed (byte* keyBase = keys)
        {
            foreach (int index in order)
            {
                var k = new Lmdb.Value { Size = BTreeVersusLmdb.KeySizeBytes, Data = (nint)(keyBase + (index * BTreeVersusLmdb.KeySizeBytes)) };
                if (Lmdb.Get(txn, _dbi, ref k, out var v) == 0)
                {
                    bytes += (long)v.Size;
                }
            }
        }

        Lmdb.TxnAbort(txn);
        return bytes;
    }

    public long Scan()
    {
        Lmdb.Check(Lmdb.TxnBegin(_env, 0, Lmdb.ReadOnly, out nint txn), "mdb_txn_begin");
        Lmdb.Check(Lmdb.CursorOpen(txn, _dbi, out nint cursor), "mdb_cursor_open");
        long count = 0;
        var k = default(Lmdb.Value);
        var v = default(Lmdb.Value);
        for (int rc = Lmdb.CursorGet(cursor, ref k, ref v, Lmdb.CursorFirst); rc == 0; rc = Lmdb.CursorGet(cursor, ref k, ref v, Lmdb.CursorNext))
        {
            count += v.Size > 0 ? 1 : 0;
        }

        Lmdb.CursorClose(cursor);
        Lmdb.TxnAbort(txn);
        return count;
    }

    public void Dispose() => Lmdb.EnvClose(_env);
}

/// <summary>Shared workload data and helpers.</summary>
internal static class Workload
{
    /// <summary>16-byte keys: an 8-byte big-endian sequence number, then 8 bytes derived from it (so the order is the sequence's).</summary>
    public static byte[] Keys(int count)
    {
        var keys = new byte[count * BTreeVersusLmdb.KeySizeBytes];
        for (int i = 0; i < count; i++)
        {
            var key = keys.AsSpan(i * BTreeVersusLmdb.KeySizeBytes, BTreeVersusLmdb.KeySizeBytes);
            System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(key, i);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(key[8..], (ulong)i * 0x9E3779B97F4A7C15UL);
        }

        return keys;
    }

    public static int[] Sequential(int count) => Enumerable.Range(0, count).ToArray();

    public static int[] Shuffled(int count, int seed)
    {
        var order = Sequential(count);
        new Random(seed).Shuffle(order);
        return order;
    }

    public static string NewDirectory(string engine)
    {
        string directory = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"btree-bench-{engine}-{Environment.ProcessId}-{Guid.NewGuid():N}");
        System.IO.Directory.CreateDirectory(directory);
        return directory;
    }

    public static IKeyValueEngine Create(string engine, string directory) => engine switch
    {
        BTreeVersusLmdb.Ours => new EmbeddedRaftEngine(directory),
        BTreeVersusLmdb.Reference => new LmdbEngine(directory),
        _ => throw new ArgumentOutOfRangeException(nameof(engine), engine, "Unknown engine."),
    };

    public static byte[] Value() => Enumerable.Range(0, BTreeVersusLmdb.ValueSizeBytes).Select(i => (byte)(i * 31)).ToArray();

    public static void AppendResult(string line)
    {
        Console.WriteLine(line);
        File.AppendAllText(System.IO.Path.Combine(System.IO.Path.GetTempPath(), "btree-bench-sizes.txt"), line + Environment.NewLine);
    }

}
