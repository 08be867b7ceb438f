using System.Buffers.Binary;

namespace EmbeddedRaft.Storage.BTree;

/// <summary>
/// A read or write transaction on a <see cref="BTreeDatabase"/>. A read transaction sees the
/// snapshot of the moment it began for as long as it is open, whatever the writer commits meanwhile;
/// a write transaction sees its own changes and makes them visible and durable at
/// <see cref="Commit"/>, or discards them at <see cref="Rollback"/> or <see cref="Dispose"/>.
/// </summary>
/// <remarks>
/// Not thread-safe: use a transaction (and its buckets and cursors) from one thread at a time.
/// Different transactions may be used from different threads concurrently. One exception: once a
/// bucket of a read transaction is open, <see cref="Bucket.TryGet"/> and <see cref="Bucket.Get"/>
/// on it may be called from several threads at once (a lookup changes nothing in a read
/// transaction), as long as nothing else uses the transaction meanwhile and it is disposed after
/// the last lookup. Always dispose it: an open read transaction keeps the pages of its snapshot
/// from being reused.
/// </remarks>
public sealed class Transaction : IDisposable
{
    // The buckets opened so far: the first in _firstBucket, any others in _moreBuckets (made on the
    // second). A read transaction (one per MVCC read) typically opens one bucket and changes nothing,
    // so it allocates none of the writer's collections below: they are made on first use.
    private Bucket? _firstBucket;
    private Dictionary<string, Bucket>? _moreBuckets;
    private List<(long PageId, byte[] Buffer, bool SealAtWrite)>? _dirtyPages;
    private List<(long PageId, int Count)>? _freedPages;
    private HashSet<long>? _coldPages;
    private Tree? _catalog;
    private List<byte[]>? _arenaChunks;
    private byte[]? _arena;
    private int _arenaUsed;
    private bool _ended;

    internal Transaction(BTreeDatabase database, MetaState snapshot, bool readOnly)
    {
        Database = database;
        Snapshot = snapshot;
        IsReadOnly = readOnly;
        Id = readOnly ? snapshot.Txid : snapshot.Txid + 1;
        PageCount = snapshot.PageCount;
        _dirtyPages = readOnly ? null : database.Pools.RentDirtyPageList();
    }

    /// <summary>True for a read transaction, which refuses every change with <see cref="InvalidOperationException"/>.</summary>
    public bool IsReadOnly { get; }

    /// <summary>
    /// The transaction id: for a read transaction, the id of the commit whose snapshot it sees; for a
    /// write transaction, the id its commit will have.
    /// </summary>
    public long Id { get; }

    internal BTreeDatabase Database { get; }

    internal MetaState Snapshot { get; }

    /// <summary>The high-water mark as this transaction has moved it.</summary>
    internal long PageCount { get; private set; }

    /// <summary>The tree of bucket records, made on first use (a read transaction that opens a cached bucket never needs it).</summary>
    internal Tree Catalog => _catalog ??= new Tree(this, Snapshot.CatalogRoot, Snapshot.BucketCount);

    /// <summary>Pages to write at commit; those marked <c>SealAtWrite</c> (page-mode leaves) get their header and checksum just before they are written.</summary>
    internal List<(long PageId, byte[] Buffer, bool SealAtWrite)> DirtyPages =>
        _dirtyPages ?? throw new InvariantViolationException($"Read transaction {Id} asked for the dirty pages only a write transaction has.");

    internal List<(long PageId, int Count)> FreedPages => _freedPages ??= [];

    /// <summary>Pages written by this transaction that the writer is unlikely to touch again (the full
    /// pages left behind by an append run): not published to the page cache.</summary>
    internal HashSet<long> ColdPages => _coldPages ??= [];

    /// <summary>Opens an existing bucket, or returns null when there is none of that name.</summary>
    /// <exception cref="ArgumentException">The name is empty or too long.</exception>
    /// <exception cref="ObjectDisposedException">The transaction has ended.</exception>
    public Bucket? OpenBucket(string name)
    {
        ThrowIfEnded();
        if (TryGetOpened(name) is { } opened)
        {
            return opened;
        }

        if (IsReadOnly && Volatile.Read(ref Database.LastReadBucket) is { } cached
            && ReferenceEquals(cached.Snapshot, Snapshot) && string.Equals(cached.Name, name, StringComparison.Ordinal))
        {
            var known = new Bucket(this, name, new Tree(this, cached.RootPageId, cached.Count));
            AddOpened(known);
            return known;
        }

        var nameBytes = Bucket.EncodeName(name, Database.Options.MaxKeySizeBytes);
        if (!Catalog.TryGet(nameBytes, out var record))
        {
            return null;
        }

        if (record.Length != BucketRecordSizeBytes)
        {
            throw Database.Corrupt(Catalog.RootPageId, $"bucket record of '{name}' is {record.Length} bytes, expected {BucketRecordSizeBytes}");
        }

        long rootPageId = BinaryPrimitives.ReadInt64LittleEndian(record);
        long count = BinaryPrimitives.ReadInt64LittleEndian(record[8..]);
        if (IsReadOnly)
        {
            Volatile.Write(ref Database.LastReadBucket, new CatalogRecordCache(Snapshot, name, rootPageId, count));
        }

        var bucket = new Bucket(this, name, new Tree(this, rootPageId, count));
        AddOpened(bucket);
        return bucket;
    }

    /// <summary>Creates a bucket.</summary>
    /// <exception cref="InvalidOperationException">A bucket of that name exists, or the transaction is read-only.</exception>
    /// <exception cref="ArgumentException">The name is empty or longer than <see cref="BTreeOptions.MaxKeySizeBytes"/> in UTF-8.</exception>
    /// <exception cref="ObjectDisposedException">The transaction has ended.</exception>
    public Bucket CreateBucket(string name)
    {
        ThrowIfReadOnly();
        if (OpenBucket(name) is not null)
        {
            throw new InvalidOperationException($"A bucket named '{name}' already exists.");
        }

        var nameBytes = Bucket.EncodeName(name, Database.Options.MaxKeySizeBytes);
        Catalog.Put(nameBytes, EncodeRecord(0, 0));
        var bucket = new Bucket(this, name, new Tree(this, 0, 0) { Dirty = true });
        AddOpened(bucket);
        return bucket;
    }

    /// <summary>Opens the bucket, creating it when it does not exist.</summary>
    /// <exception cref="InvalidOperationException">The bucket does not exist and the transaction is read-only.</exception>
    /// <exception cref="ArgumentException">The name is empty or too long.</exception>
    /// <exception cref="ObjectDisposedException">The transaction has ended.</exception>
    public Bucket CreateBucketIfNotExists(string name) => OpenBucket(name) ?? CreateBucket(name);

    /// <summary>Deletes a bucket and every key in it; returns false when there is no such bucket.</summary>
    /// <exception cref="InvalidOperationException">The transaction is read-only.</exception>
    /// <exception cref="ObjectDisposedException">The transaction has ended.</exception>
    public bool DeleteBucket(string name)
    {
        ThrowIfReadOnly();
        var bucket = OpenBucket(name);
        if (bucket is null)
        {
            return false;
        }

        bucket.Tree.FreeAll();
        bucket.MarkDeleted();
        RemoveOpened(name);
        Catalog.Delete(Bucket.EncodeName(name, Database.Options.MaxKeySizeBytes));
        return true;
    }

    /// <summary>The names of every bucket, in byte-wise order of their UTF-8 encoding.</summary>
    /// <exception cref="ObjectDisposedException">The transaction has ended.</exception>
    public IReadOnlyList<string> ListBuckets()
    {
        ThrowIfEnded();
        var names = new List<string>();
        var cursor = new Cursor(new Bucket(this, string.Empty, Catalog), this);
        for (bool more = cursor.First(); more; more = cursor.Next())
        {
            names.Add(System.Text.Encoding.UTF8.GetString(cursor.Key));
        }

        return names;
    }

    /// <summary>
    /// Writes every bucket and entry this transaction sees to <paramref name="destination"/> as a
    /// B+tree image (format in docs/btree.md), from which <see cref="BTreeDatabase.RestoreImageAsync"/>
    /// builds an equal database. A read transaction writes one commit's consistent snapshot while the
    /// writer goes on committing; memory use is one 64 KiB buffer, whatever the size of the tree.
    /// </summary>
    /// <returns>The number of bytes written.</returns>
    /// <remarks>Use the transaction for nothing else until the returned task completes. The stream is
    /// flushed but not disposed.</remarks>
    /// <exception cref="ObjectDisposedException">The transaction has ended.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled; the stream then holds an incomplete image, which a restore refuses.</exception>
    public Task<long> WriteImageAsync(Stream destination, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ThrowIfEnded();
        return BTreeImage.WriteAsync(this, destination, cancellationToken);
    }

    /// <summary>
    /// Makes the transaction's changes visible to transactions that begin afterwards and, with
    /// <see cref="CommitDurability.Synced"/>, durable before it returns. Ends the transaction.
    /// </summary>
    /// <exception cref="InvalidOperationException">The transaction is read-only.</exception>
    /// <exception cref="ObjectDisposedException">The transaction has ended.</exception>
    /// <exception cref="IOException">Writing or flushing failed. The changes may or may not be durable;
    /// the database refuses further writes until it is reopened (which finds the last durable commit).</exception>
    public void Commit(CommitDurability durability = CommitDurability.Synced)
    {
        ThrowIfReadOnly();
        bool changed = Catalog.Dirty;
        var opened = OpenedBuckets();
        foreach (var bucket in opened)
        {
            changed |= bucket.Tree.Dirty;
        }

        try
        {
            if (changed)
            {
                opened.Sort(static (a, b) => string.CompareOrdinal(a.Name, b.Name));
                foreach (var bucket in opened)
                {
                    var tree = bucket.Tree;
                    if (!tree.Dirty)
                    {
                        continue;
                    }

                    tree.Rebalance();
                    tree.Spill();
                    Catalog.Put(Bucket.EncodeName(bucket.Name, Database.Options.MaxKeySizeBytes), EncodeRecord(tree.RootPageId, tree.Count));
                }

                Catalog.Rebalance();
                Catalog.Spill();
            }
        }
        catch
        {
            End();
            Database.EndWrite(this, committed: false);
            throw;
        }

        End();
        if (changed)
        {
            Database.CommitWrite(this, Catalog.RootPageId, Catalog.Count, durability);
        }
        else
        {
            Database.EndWrite(this, committed: false);
        }
    }

    /// <summary>
    /// Commits (synced) even though nothing changed, so that the commit writes a new freelist run:
    /// how an open that rebuilt a damaged freelist makes the rebuilt one durable. Ends the transaction.
    /// </summary>
    internal void CommitFreelistOnly()
    {
        ThrowIfReadOnly();
        End();
        Database.CommitWrite(this, Catalog.RootPageId, Catalog.Count, CommitDurability.Synced);
    }

    /// <summary>Discards a write transaction's changes, or ends a read transaction. Ends the transaction.</summary>
    /// <exception cref="ObjectDisposedException">The transaction has ended.</exception>
    public void Rollback()
    {
        ThrowIfEnded();
        Finish();
    }

    /// <summary>Ends the transaction, discarding uncommitted changes. Does nothing when it has ended; never throws.</summary>
    public void Dispose()
    {
        if (!_ended)
        {
            Finish();
        }
    }

    private void Finish()
    {
        End();
        if (IsReadOnly)
        {
            Database.EndRead(this);
        }
        else
        {
            Database.EndWrite(this, committed: false);
        }
    }

    internal const int BucketRecordSizeBytes = 16;

    internal static byte[] EncodeRecord(long rootPageId, long count)
    {
        var record = new byte[BucketRecordSizeBytes];
        BinaryPrimitives.WriteInt64LittleEndian(record, rootPageId);
        BinaryPrimitives.WriteInt64LittleEndian(record.AsSpan(8), count);
        return record;
    }

    internal long AllocatePages(int count)
    {
        long pageId = Database.Freelist.TryAllocate(count, PageCount);
        if (pageId < 0)
        {
            pageId = PageCount;
            PageCount += count;
        }

        return pageId;
    }

    /// <summary>
    /// Copies a key and value next to each other into memory that lives as long as the transaction's
    /// nodes: small ones share 64 KiB chunks (few objects for the GC to trace), large ones get their own array.
    /// </summary>
    internal ReadOnlyMemory<byte> Store(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        int length = key.Length + value.Length;
        Memory<byte> target;
        if (length > WriterPools.ArenaChunkBytes / 8)
        {
            target = new byte[length];
        }
        else
        {
            if (_arena is null || _arenaUsed + length > _arena.Length)
            {
                _arena = Database.Pools.RentChunk();
                (_arenaChunks ??= []).Add(_arena);
                _arenaUsed = 0;
            }

            target = _arena.AsMemory(_arenaUsed, length);
            _arenaUsed += length;
        }

        key.CopyTo(target.Span);
        value.CopyTo(target.Span[key.Length..]);
        return target;
    }

    /// <summary>
    /// Gives the arena chunks and the dirty page list back for the next write transaction (called
    /// once it has ended: its nodes are dead and its pages written or dropped). Safe to call twice.
    /// </summary>
    internal void ReturnPooledBuffers()
    {
        if (_arenaChunks is not null)
        {
            foreach (var chunk in _arenaChunks)
            {
                Database.Pools.ReturnChunk(chunk);
            }

            _arenaChunks.Clear();
        }

        _arena = null;
        if (_dirtyPages is not null)
        {
            Database.Pools.ReturnDirtyPageList(_dirtyPages);
            _dirtyPages = [];
        }
    }

    internal void FreePages(long pageId, int count) => FreedPages.Add((pageId, count));

    internal void AddDirtyPage(long pageId, byte[] buffer, bool sealAtWrite = false) => DirtyPages.Add((pageId, buffer, sealAtWrite));

    private Bucket? TryGetOpened(string name)
    {
        if (_firstBucket is not null && string.Equals(_firstBucket.Name, name, StringComparison.Ordinal))
        {
            return _firstBucket;
        }

        return _moreBuckets is not null && _moreBuckets.TryGetValue(name, out var bucket) ? bucket : null;
    }

    private void AddOpened(Bucket bucket)
    {
        if (_firstBucket is null)
        {
            _firstBucket = bucket;
        }
        else
        {
            (_moreBuckets ??= new(StringComparer.Ordinal)).Add(bucket.Name, bucket);
        }
    }

    private void RemoveOpened(string name)
    {
        if (_firstBucket is not null && string.Equals(_firstBucket.Name, name, StringComparison.Ordinal))
        {
            _firstBucket = null;
        }
        else
        {
            _moreBuckets?.Remove(name);
        }
    }

    private List<Bucket> OpenedBuckets()
    {
        var opened = new List<Bucket>((_firstBucket is null ? 0 : 1) + (_moreBuckets?.Count ?? 0));
        if (_firstBucket is not null)
        {
            opened.Add(_firstBucket);
        }

        if (_moreBuckets is not null)
        {
            opened.AddRange(_moreBuckets.Values);
        }

        return opened;
    }

    internal void ThrowIfEnded() => ObjectDisposedException.ThrowIf(_ended || Database.IsDisposed, this);

    internal void ThrowIfReadOnly()
    {
        ThrowIfEnded();
        if (IsReadOnly)
        {
            throw new InvalidOperationException("This is a read transaction; begin a write transaction to change the database.");
        }
    }

    private void End() => _ended = true;
}
