using System.Buffers.Binary;
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

        // Rebuilt in a hash map of slots (one probe per revision), then sorted into the index once.
        // A key is its bytes in one shared array and, when written once (most keys), its revision:
        // no object per key while the revisions are scanned (see LoadedKeys).
        int capacity = (int)Math.Min(keys.Count, 1 << 20);
        var rebuilt = new RebuiltKeys(capacity, trackLeases: tx.OpenBucket(Leases.LeaseBucket.Name) is { Count: > 0 });
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

            if (!StoredValue.TryDecode(bytes, revision.Main, tombstone, out var decoded))
            {
                throw StoredValue.Malformed(path, revision, tombstone, bytes);
            }

            Restore(rebuilt, revision, tombstone, StoredValue.KeyOf(bytes, decoded), decoded, path);
            lastMain = Math.Max(lastMain, revision.Main);
            count++;
        }

        state.Index.Load(rebuilt.Keys);

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

        var attached = rebuilt.Attached();
        return (state, resumed, attached);
    }

    /// <summary>
    /// Creates the buckets of a new store (format version <see cref="MetaKeys.FormatVersion"/>), or
    /// checks an existing store's version: 2 opens as it is; 1 is raised to 2 in one synced commit
    /// (its kind 1 and 2 entries stay as they are and are read as before; from then on this store
    /// writes kinds 3 and 4, which a build that reads only version 1 must not see); any other
    /// version is refused, naming it.
    /// </summary>
    private static void EnsureBuckets(BTreeDatabase database, string path)
    {
        using (var read = database.BeginRead())
        {
            if (read.OpenBucket(MetaKeys.KeyBucket) is not null && read.OpenBucket(MetaKeys.MetaBucket) is { } meta)
            {
                long? format = ReadLong(meta, MetaKeys.FormatVersionKey, path);
                if (format == MetaKeys.FormatVersion)
                {
                    return;
                }

                if (format != MetaKeys.FormatVersion1)
                {
                    throw new CorruptionException(path, 0, $"the MVCC format version is {format?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "missing"}; this library reads versions {MetaKeys.FormatVersion1} and {MetaKeys.FormatVersion}");
                }
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
    /// Adds one stored revision to the index being rebuilt, checking it against what came before
    /// (a tombstone of a key with no live history is skipped).
    /// </summary>
    private static void Restore(RebuiltKeys rebuilt, Revision revision, bool tombstone, ReadOnlySpan<byte> key, in StoredValue.Decoded decoded, string path)
    {
        if (tombstone)
        {
            // A tombstone of a key with no live history is the remains of an interrupted compaction
            // (it deletes in revision order, so it removed the generation's puts first): the resumed
            // compaction removes it.
            if (rebuilt.TryFind(key, out int deleted))
            {
                rebuilt.HistoryOf(deleted).Tombstone(revision);
                rebuilt.SetLease(deleted, 0);
            }

            return;
        }

        // One probe: finds the key's slot, or adds the key.
        if (rebuilt.FindOrAdd(key, revision, decoded, out int slot))
        {
            rebuilt.SetLease(slot, decoded.Lease);
            return;
        }

        var history = rebuilt.HistoryOf(slot);
        history.Put(revision);
        if (history.TryGet(revision.Main, out _, out var created, out long version)
            && (created.Main != decoded.CreateRevision || version != decoded.Version))
        {
            throw new CorruptionException(path, 0,
                $"revision {revision} of key {MvccText.Show(key)} says create revision {decoded.CreateRevision}, version {decoded.Version}; its history says {created.Main}, {version}");
        }

        rebuilt.SetLease(slot, decoded.Lease);
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

    /// <summary>
    /// The keys found so far at open (<see cref="LoadedKeys"/>), the map from key to slot, and, when
    /// the store has leases, the lease of each key's newest revision (0 after a tombstone).
    /// </summary>
    private sealed class RebuiltKeys
    {
        private readonly Dictionary<int, int> _slots;
        private readonly Dictionary<int, int>.AlternateLookup<ReadOnlySpan<byte>> _lookup;
        private readonly bool _trackLeases;
        private long[] _leases;

        public RebuiltKeys(int capacity, bool trackLeases)
        {
            Keys = new LoadedKeys(capacity, keyBytesEach: 16);
            _slots = new Dictionary<int, int>(capacity, Keys);
            _lookup = _slots.GetAlternateLookup<ReadOnlySpan<byte>>();
            _trackLeases = trackLeases;
            _leases = trackLeases ? new long[Math.Max(capacity, 16)] : [];
        }

        public LoadedKeys Keys { get; }

        public bool TryFind(ReadOnlySpan<byte> key, out int slot) => _lookup.TryGetValue(key, out slot);

        /// <summary>
        /// The slot of <paramref name="key"/>, found or added by one probe; true when added, first
        /// seen at <paramref name="revision"/> (a put): held as that revision when the put created
        /// it, else (etcd's <c>keyIndex.restore</c>: earlier revisions were compacted away) as a history.
        /// </summary>
        public bool FindOrAdd(ReadOnlySpan<byte> key, Revision revision, in StoredValue.Decoded decoded, out int slot)
        {
            if (!Keys.FindOrAdd(_lookup, key, out slot))
            {
                return false;
            }

            var created = new Revision(decoded.CreateRevision, 0);
            if (created == revision && decoded.Version == 1)
            {
                Keys.SetSingle(slot, revision);
            }
            else
            {
                var history = new KeyHistory(key.ToArray());
                history.Restore(created, revision, decoded.Version);
                Keys.SetHistory(slot, history);
            }

            return true;
        }

        /// <summary>The key's history object, made from its one put when it had none (it is written again or deleted).</summary>
        public KeyHistory HistoryOf(int slot)
        {
            if (Keys.HistoryAt(slot) is { } history)
            {
                return history;
            }

            history = new KeyHistory(Keys.KeyAt(slot).ToArray());
            history.Put(Keys.SingleAt(slot));
            Keys.SetHistory(slot, history);
            return history;
        }

        /// <summary>Revisions come in revision order: the last one seen of a key decides its lease.</summary>
        public void SetLease(int slot, long lease)
        {
            if (!_trackLeases)
            {
                return;
            }

            if (slot >= _leases.Length)
            {
                Array.Resize(ref _leases, Math.Max(_leases.Length * 2, slot + 1));
            }

            _leases[slot] = lease;
        }

        /// <summary>Each key whose newest revision is a put on a lease, with that lease.</summary>
        public List<(byte[] Key, long Lease)> Attached()
        {
            var attached = new List<(byte[] Key, long Lease)>();
            if (_trackLeases)
            {
                for (int slot = 0; slot < Keys.Count; slot++)
                {
                    if (_leases[slot] != 0)
                    {
                        attached.Add((Keys.KeyAt(slot).ToArray(), _leases[slot]));
                    }
                }
            }

            return attached;
        }
    }
}
