using EmbeddedRaft.Benchmarks.BTree;
using EmbeddedRaft.Storage.BTree;
using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Benchmarks.Mvcc;

/// <summary>
/// The raw B+tree doing the MVCC workload's work with no MVCC: one bucket from key to value, synced
/// commits of <see cref="MvccWorkload.RawKeysPerCommit"/> keys, a read transaction per single read.
/// Same page size and page cache as the B+tree benchmarks (<see cref="EmbeddedRaftEngine.Options"/>).
/// </summary>
internal sealed class RawBTreeEngine : IMvccWorkloadEngine
{
    private const string BucketName = "kv";
    private readonly string _path;
    private readonly long _openedTxid;
    private BTreeDatabase _db;

    private delegate void KeyWrite(Bucket bucket, ReadOnlySpan<byte> key);

    public RawBTreeEngine(string directory)
    {
        _path = Path.Combine(directory, "raw.db");
        _db = Open(_path);
        using Transaction tx = _db.BeginWrite();
        tx.CreateBucketIfNotExists(BucketName);
        tx.Commit();
        _openedTxid = _db.GetStatistics().Txid;
    }

    public long LastPutWaits => 0;

    private static BTreeDatabase Open(string path) => BTreeDatabase.Open(PhysicalFileSystem.Instance, path, EmbeddedRaftEngine.Options);

    public Task PutAllAsync(byte[] keys, int[] order, byte[] value)
    {
        ForEachInCommits(keys, order, (bucket, key) => bucket.Put(key, value));
        return Task.CompletedTask;
    }

    public Task CompareAndPutAllAsync(byte[] keys, int[] order, byte[] value)
    {
        ForEachInCommits(keys, order, (bucket, key) =>
        {
            if (bucket.TryGet(key, out _))
            {
                bucket.Put(key, value);
            }
        });
        return Task.CompletedTask;
    }

    public long GetEach(byte[] keys, int[] order)
    {
        long bytes = 0;
        foreach (int index in order)
        {
            using Transaction tx = _db.BeginRead();
            if (tx.OpenBucket(BucketName)!.TryGet(MvccWorkload.Key(keys, index).Span, out ReadOnlySpan<byte> found))
            {
                bytes += found.Length;
            }
        }

        return bytes;
    }

    public long RangeEach(byte[] keys, int[] starts, int length)
    {
        long seen = 0;
        foreach (int start in starts)
        {
            using Transaction tx = _db.BeginRead();
            Cursor cursor = tx.OpenBucket(BucketName)!.CreateCursor();
            int taken = 0;
            for (bool more = cursor.Seek(MvccWorkload.Key(keys, start).Span); more && taken < length; more = cursor.Next())
            {
                taken += cursor.Value.Length > 0 ? 1 : 0;
            }

            seen += taken;
        }

        return seen;
    }

    /// <summary>Closes and opens the file, then reads every entry once: the least a store that
    /// rebuilds an index from this file must do.</summary>
    public Task ReopenAsync()
    {
        _db.Dispose();
        _db = Open(_path);
        using Transaction tx = _db.BeginRead();
        Cursor cursor = tx.OpenBucket(BucketName)!.CreateCursor();
        long entries = 0;
        for (bool more = cursor.First(); more; more = cursor.Next())
        {
            entries += cursor.Value.Length > 0 ? 1 : 0;
        }

        EntriesSeenOnOpen = entries;
        return Task.CompletedTask;
    }

    /// <summary>Entries read by the last <see cref="ReopenAsync"/> (kept so the scan is not optimised away).</summary>
    public long EntriesSeenOnOpen { get; private set; }

    private void ForEachInCommits(byte[] keys, int[] order, KeyWrite write)
    {
        for (int start = 0; start < order.Length; start += MvccWorkload.RawKeysPerCommit)
        {
            using Transaction tx = _db.BeginWrite();
            Bucket bucket = tx.OpenBucket(BucketName)!;
            int end = Math.Min(order.Length, start + MvccWorkload.RawKeysPerCommit);
            for (int i = start; i < end; i++)
            {
                write(bucket, MvccWorkload.Key(keys, order[i]).Span);
            }

            tx.Commit();
        }
    }

    public async Task<long> CloseCountingCommitsAsync()
    {
        long commits = _db.GetStatistics().Txid - _openedTxid;
        await _db.DisposeAsync().ConfigureAwait(false);
        return commits;
    }

    public ValueTask DisposeAsync() => _db.DisposeAsync();
}
