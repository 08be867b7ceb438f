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
    /// <summary>
    /// Restores the leases of <paramref name="database"/> into <paramref name="state"/>'s lessor and
    /// attaches <paramref name="attached"/>: each live key's lease, gathered by the store loader's
    /// scan of the revisions (one scan at open, not one per loader).
    /// </summary>
    /// <exception cref="CorruptionException">A malformed lease entry, or a key attached to a lease the bucket does not hold.</exception>
    public static void Load(BTreeDatabase database, StoreState state, List<(byte[] Key, long Lease)> attached)
    {
        EnsureBucket(database);
        using var tx = database.BeginRead();
        var leases = tx.OpenBucket(LeaseBucket.Name)!;
        if (leases.Count == 0)
        {
            // No lease, so no key can be attached to one (a put names an existing lease; a revoke
            // deletes every key with the lease in the same commit), and the store loader gathered none.
            return;
        }

        var cursor = leases.CreateCursor();
        for (bool more = cursor.First(); more; more = cursor.Next())
        {
            if (!LeaseBucket.TryDecode(cursor.Key, cursor.Value, out long id, out long ttl, out long renewedAt))
            {
                throw new CorruptionException(state.Path, 0, $"the lease bucket holds a malformed entry {MvccText.Show(cursor.Key)}");
            }

            state.Lessor.Restore(id, ttl, renewedAt);
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
