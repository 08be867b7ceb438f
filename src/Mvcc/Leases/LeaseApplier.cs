using EmbeddedRaft.Mvcc.Store;
using EmbeddedRaft.Storage.BTree;

namespace EmbeddedRaft.Mvcc.Leases;

/// <summary>
/// Applies lease grants and revocations on the writer thread, inside the writer's current batch,
/// so a lease and the keys it deletes reach the B+tree in the same commit as the data around them
/// (a crash keeps both or neither). Every check that can refuse runs before the first change.
/// </summary>
internal static class LeaseApplier
{
    /// <summary>
    /// A keep-alive applied from the replicated log: renews the lease on this member's clock when it
    /// exists (<see cref="Lessor.RenewApplied"/>). Writes nothing but the consistent index.
    /// </summary>
    /// <exception cref="MvccException"><see cref="MvccError.LeaseNotFound"/>: no such lease (revoked by an earlier entry, or never granted).</exception>
    public static LeaseKeepAliveResponse KeepAlive(StoreState state, long id, long index, Func<Transaction>? batch)
    {
        long ttl = state.Lessor.RenewApplied(id, index) ?? throw new MvccException(MvccError.LeaseNotFound);
        if (index != 0 && batch is not null)
        {
            // Persist the renewal's index: an expiry revocation proposed before it must do nothing on
            // every member, also one that restarts or restores a snapshot in between (decided from
            // the log and the stored state alone, never a clock).
            var tx = batch();
            Bucket(tx, state).Put(LeaseBucket.Key(id), LeaseBucket.Value(ttl, index));
        }

        return new LeaseKeepAliveResponse { Header = new ResponseHeader { Revision = state.Revision }, Id = id, TtlSeconds = ttl };
    }

    /// <summary>etcd's <c>lessor.Grant</c>: refuses an id in use; raises a TTL below the minimum; persists the lease, then adds it.</summary>
    public static LeaseGrantResponse Grant(StoreState state, Transaction batch, LeaseGrantOp op)
    {
        var lessor = state.Lessor;
        long id = op.Id;
        if (id == 0)
        {
            id = lessor.ChooseId();
        }
        else if (lessor.Contains(id))
        {
            throw new MvccException(MvccError.LeaseExists);
        }

        long ttl = Math.Max(op.TtlSeconds, state.Options.Leases.MinTtlSeconds);
        Bucket(batch, state).Put(LeaseBucket.Key(id), LeaseBucket.Value(ttl));
        lessor.Grant(id, ttl);
        return new LeaseGrantResponse { Header = new ResponseHeader { Revision = state.Revision }, Id = id, TtlSeconds = ttl };
    }

    /// <summary>
    /// etcd's <c>lessor.Revoke</c>: deletes every attached key, in key order, through the store's
    /// ordinary delete path in one write transaction (one revision, or none when the lease holds no
    /// key), then the lease itself. A revocation the expiry check queued does nothing when the lease
    /// is gone or was renewed meanwhile; so does a replicated expiry revocation when a keep-alive
    /// applied after the leader found the lease expired (<see cref="LeaseRevokeOp.RenewedAtIndexOrBelow"/>).
    /// </summary>
    public static LeaseRevokeResponse Revoke(StoreState state, Transaction batch, WriteTransaction transaction, LeaseRevokeOp op)
    {
        var lessor = state.Lessor;
        if (!lessor.Contains(op.Id) || (op.OnlyIfExpired && !lessor.IsExpired(op.Id))
            || (op.RenewedAtIndexOrBelow is long seen && lessor.RenewedAtIndex(op.Id) > seen))
        {
            return op.OnlyIfExpired || op.IfExists
                ? new LeaseRevokeResponse { Header = new ResponseHeader { Revision = transaction.BeginRevision } }
                : throw new MvccException(MvccError.LeaseNotFound);
        }

        foreach (var key in lessor.KeysOf(op.Id))
        {
            var deleted = transaction.DeleteRange(new DeleteRangeRequest { Key = key });
            if (deleted.Deleted != 1)
            {
                throw new InvariantViolationException($"Lease revoke: key {MvccText.Show(key)} of lease {op.Id} is not live ({deleted.Deleted} deleted).");
            }
        }

        if (!Bucket(batch, state).Delete(LeaseBucket.Key(op.Id)))
        {
            throw new InvariantViolationException($"Lease revoke: lease {op.Id} is not in the lease bucket.");
        }

        lessor.Remove(op.Id);
        long revision = transaction.BeginRevision + (transaction.Changes > 0 ? 1 : 0);
        return new LeaseRevokeResponse { Header = new ResponseHeader { Revision = revision } };
    }

    private static Bucket Bucket(Transaction batch, StoreState state) =>
        batch.OpenBucket(LeaseBucket.Name) ?? throw new InvariantViolationException($"MVCC store {state.Path}: the lease bucket is missing.");
}
