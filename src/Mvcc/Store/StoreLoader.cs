using System.Buffers.Binary;
using System.Runtime.InteropServices;
using EmbeddedRaft.Mvcc.Index;
using EmbeddedRaft.Storage;
using EmbeddedRaft.Storage.BTree;
using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Mvcc.Store;

/// <summary>
/// Opens the store's B+tree and rebuilds the in-memory state from it (etcd's <c>store.restore</c>):
/// the key index from every stored revision in revision order, the current revision, the
/// consistent index and the compaction marks; a compaction that was scheduled but not finished is
/// handed back to be resumed.
/// </summary>
internal static class StoreLoader
{
    public const string FileName = "mvcc.db";

    /// <summary>
    /// Rebuilds the store's state from the B+tree in one scan of the revisions. When the lease
    /// bucket holds any lease, the same scan also yields each live key's lease (the lease field of
    /// its newest revision) for <see cref="Leases.LeaseLoader"/>; otherwise no key can have one.
    /// </summary>
    public static (StoreState State, List<CompactionJob> Resumed, List<(byte[] Key, long Lease)> Attached) Load(BTreeDatabase database, string path, MvccStoreOptions options)
    {
        EnsureBuckets(database, path);
        var state = new StoreState(path, database, options);
        var resumed = new List<CompactionJob>();
        using var tx = database.BeginRead();
        var meta = tx.OpenBucket(MetaKeys.MetaBucket)!;
        var keys = tx.OpenBucket(MetaKeys.KeyBucket)!;
        long scheduled = ReadLong(meta, MetaKeys.ScheduledCompactKey, path) ?? -1;
        long finished = ReadLong(meta, MetaKeys.FinishedCompactKey, path) ?? -1;
        state.ConsistentIndex = (ulong)(ReadLong(meta, MetaKeys.ConsistentIndexKey, path) ?? 0);

        // Rebuilt in a hash map (one probe per revision), then sorted into the index once.
        var comparer = new KeyBytesComparer();
        var histories = new Dictionary<byte[], KeyHistory>((int)Math.Min(keys.Count, 1 << 20), comparer);
        var lookup = histories.GetAlternateLookup<ReadOnlySpan<byte>>();
        Dictionary<KeyHistory, long>? leaseOf = tx.OpenBucket(Leases.LeaseBucket.Name) is { Count: > 0 } ? new(ReferenceEqualityComparer.Instance) : null;
        long lastMain = 1;
        long count = 0;
        var cursor = keys.CreateCursor();
        for (bool more = cursor.First(); more; more = cursor.Next())
        {
            var key = cursor.Key;
            var bytes = cursor.Value;
            if (!RevisionKey.TryDecode(key, out var revision, out bool tombstone))
            {
                throw new CorruptionException(path, 0, $"the revision bucket holds a malformed key {MvccText.Show(key)}");
            }

            if (!StoredValue.TryDecode(bytes, tombstone, out var decoded))
            {
                throw new CorruptionException(path, 0, $"the stored value of revision {revision} is malformed");
            }

            var history = Restore(lookup, comparer, revision, tombstone, StoredValue.KeyOf(bytes, decoded), decoded, path);
            if (leaseOf is not null && history is not null)
            {
                // Revisions come in revision order: the last one seen of a key decides its lease.
                if (tombstone || decoded.Lease == 0)
                {
                    leaseOf.Remove(history);
                }
                else
                {
                    leaseOf[history] = decoded.Lease;
                }
            }

            lastMain = Math.Max(lastMain, revision.Main);
            count++;
        }

        state.Index.Load(histories.Values);

        // A compaction can remove every revision up to its point (deleted keys leave nothing), so
        // the revision is at least the compact revision, as in etcd.
        state.Revision = Math.Max(lastMain, scheduled);
        state.CompactRevision = scheduled;
        if (scheduled > finished)
        {
            resumed.Add(new CompactionJob(scheduled));
        }

        if (options.Logger is { } logger && logger.IsEnabled(LogLevel.Information))
        {
            logger.LogInformation(
                "MVCC store {Path}: {Revisions} revisions of {Keys} keys loaded; revision {Revision}, compact revision {CompactRevision}, consistent index {ConsistentIndex}{Resume}.",
                path, count, state.Index.Count, state.Revision, scheduled, state.ConsistentIndex, scheduled > finished ? $"; resuming the compaction at {scheduled} (finished: {finished})" : "");
        }

        List<(byte[] Key, long Lease)> attached = leaseOf is null ? [] : [.. leaseOf.Select(pair => (pair.Key.Key, pair.Value))];
        return (state, resumed, attached);
    }

    private static void EnsureBuckets(BTreeDatabase database, string path)
    {
        using (var read = database.BeginRead())
        {
            if (read.OpenBucket(MetaKeys.KeyBucket) is not null && read.OpenBucket(MetaKeys.MetaBucket) is { } meta)
            {
                long? format = ReadLong(meta, MetaKeys.FormatVersionKey, path);
                if (format != MetaKeys.FormatVersion)
                {
                    throw new CorruptionException(path, 0, $"the MVCC format version is {format?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "missing"}; this library reads version {MetaKeys.FormatVersion}");
                }

                return;
            }
        }

        using var tx = database.BeginWrite();
        tx.CreateBucketIfNotExists(MetaKeys.KeyBucket);
        var created = tx.CreateBucketIfNotExists(MetaKeys.MetaBucket);
        var bytes = new byte[8];
        BinaryPrimitives.WriteInt64BigEndian(bytes, MetaKeys.FormatVersion);
        created.Put(MetaKeys.FormatVersionKey, bytes);
        tx.Commit(CommitDurability.Synced);
    }

    /// <summary>
    /// Adds one stored revision to the index being rebuilt, checking it against what came before;
    /// returns the key's history, or null for a tombstone of a key with no live history.
    /// </summary>
    private static KeyHistory? Restore(
        Dictionary<byte[], KeyHistory>.AlternateLookup<ReadOnlySpan<byte>> lookup,
        KeyBytesComparer comparer,
        Revision revision,
        bool tombstone,
        ReadOnlySpan<byte> key,
        in StoredValue.Decoded decoded,
        string path)
    {
        if (tombstone)
        {
            // A tombstone of a key with no live history is the remains of an interrupted compaction
            // (it deletes in revision order, so it removed the generation's puts first): the resumed
            // compaction removes it.
            if (lookup.TryGetValue(key, out var deleted))
            {
                deleted.Tombstone(revision);
            }

            return deleted;
        }

        // One probe: finds the key's history, or adds the key (the map copies it) to be given one.
        ref var history = ref CollectionsMarshal.GetValueRefOrAddDefault(lookup, key, out bool exists);
        if (!exists)
        {
            history = new KeyHistory(comparer.LastCreated!);
            history.Restore(new Revision(decoded.CreateRevision, 0), revision, decoded.Version);
            return history;
        }

        history!.Put(revision);
        if (history.TryGet(revision.Main, out _, out var created, out long version)
            && (created.Main != decoded.CreateRevision || version != decoded.Version))
        {
            throw new CorruptionException(path, 0,
                $"revision {revision} of key {MvccText.Show(key)} says create revision {decoded.CreateRevision}, version {decoded.Version}; its history says {created.Main}, {version}");
        }

        return history;
    }

    private static long? ReadLong(Bucket meta, byte[] key, string path)
    {
        if (!meta.TryGet(key, out var value))
        {
            return null;
        }

        if (value.Length != 8)
        {
            throw new CorruptionException(path, 0, $"meta entry {System.Text.Encoding.ASCII.GetString(key)} is {value.Length} bytes, expected 8");
        }

        return BinaryPrimitives.ReadInt64BigEndian(value);
    }
}
