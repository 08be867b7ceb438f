using EmbeddedRaft.Mvcc.Index;
using EmbeddedRaft.Mvcc.Store;
using EmbeddedRaft.Storage;
using EmbeddedRaft.Storage.BTree;

namespace EmbeddedRaft.Mvcc.Leases;

/// <summary>
/// Restores the leases at open (etcd's <c>lessor.initAndRecover</c> then the KV's re-attach): every
/// lease in the lease bucket with its full TTL from now (downtime does not expire leases), then
/// each live key's attachment, read from the lease field of its newest stored revision.
/// </summary>
internal static class LeaseLoader
{
    public static void Load(BTreeDatabase database, StoreState state)
    {
        EnsureBucket(database);
        using var tx = database.BeginRead();
        var leases = tx.OpenBucket(LeaseBucket.Name)!;
        if (leases.Count == 0)
        {
            // No lease, so no key can be attached to one (a put names an existing lease; a revoke
            // deletes every key with the lease in the same commit): nothing more to read.
            return;
        }

        var cursor = leases.CreateCursor();
        for (bool more = cursor.First(); more; more = cursor.Next())
        {
            if (!LeaseBucket.TryDecode(cursor.Key, cursor.Value, out long id, out long ttl))
            {
                throw new CorruptionException(state.Path, 0, $"the lease bucket holds a malformed entry {MvccText.Show(cursor.Key)}");
            }

            state.Lessor.Restore(id, ttl);
        }

        // The revisions are in revision order, so the last one seen of each key is its newest.
        var attached = new Dictionary<byte[], long>(new KeyBytesComparer());
        var lookup = attached.GetAlternateLookup<ReadOnlySpan<byte>>();
        var keys = tx.OpenBucket(MetaKeys.KeyBucket)!.CreateCursor();
        for (bool more = keys.First(); more; more = keys.Next())
        {
            if (!RevisionKey.TryDecode(keys.Key, out var revision, out bool tombstone) || !StoredValue.TryDecode(keys.Value, tombstone, out var decoded))
            {
                throw new CorruptionException(state.Path, 0, $"the revision bucket holds a malformed entry {MvccText.Show(keys.Key)}");
            }

            var key = StoredValue.KeyOf(keys.Value, decoded);
            if (tombstone || decoded.Lease == 0)
            {
                lookup.Remove(key);
            }
            else
            {
                lookup[key] = decoded.Lease;
            }
        }

        foreach (var (key, lease) in attached)
        {
            if (!state.Lessor.Contains(lease))
            {
                throw new CorruptionException(state.Path, 0, $"key {MvccText.Show(key)} is attached to lease {lease}, which the lease bucket does not hold");
            }

            state.Lessor.Attach(key, lease);
        }
    }

    /// <summary>Creates the lease bucket in a store made before leases existed (same format otherwise).</summary>
    private static void EnsureBucket(BTreeDatabase database)
    {
        using (var read = database.BeginRead())
        {
            if (read.OpenBucket(LeaseBucket.Name) is not null)
            {
                return;
            }
        }

        using var tx = database.BeginWrite();
        tx.CreateBucketIfNotExists(LeaseBucket.Name);
        tx.Commit(CommitDurability.Synced);
    }
}
