using EmbeddedRaft.Consensus.Host;

namespace EmbeddedRaft.Mvcc.Replication;

/// <content>
/// Raft snapshots of a replicated store (docs/architecture.md, "Snapshot images"): the store is
/// durable by itself, so a snapshot by policy copies nothing (the node syncs the store through
/// <see cref="ReplicatedStateMachine.SyncAppliedAsync"/> and saves only metadata); a member that
/// needs a snapshot gets the leader's B+tree image captured when it is sent, and restores it IN
/// PLACE — the same <see cref="MvccStore"/> swaps its file atomically, so watches open on this
/// member live on (they catch up from the new history, or end compacted) — and everything
/// replicated travels in it: the revisions, the leases with their keys, the member registry (the
/// replica bucket), the compaction marks, the consistent index.
/// </content>
public sealed partial class ReplicatedStore
{
    /// <summary>
    /// Captures the state as of the last applied batch (<see cref="IStateMachine{TResult}.CreateSnapshot"/>,
    /// called only to send a snapshot to a member that needs one): the store commits what it applied
    /// and opens a read transaction on that commit, whose consistent index is the batch's last
    /// index. Blocks the apply pipeline for that one commit; the transaction ends with the transfer.
    /// </summary>
    internal IStateMachineSnapshot CreateSnapshotCore() => Mvcc.CaptureImage();

    /// <summary>
    /// Replaces the store's state by the snapshot in <paramref name="data"/>, at <paramref name="index"/>
    /// (<see cref="IStateMachine{TResult}.RestoreAsync"/>): the image is restored beside the store and
    /// checked to be at <paramref name="index"/> (else nothing changes and the node stops), then
    /// swapped in; the registry and the transport's peer addresses follow the restored registry.
    /// </summary>
    internal async ValueTask RestoreSnapshotCoreAsync(ulong index, Stream data, CancellationToken cancellationToken)
    {
        var store = Mvcc;
        await store.RestoreImageAsync(data, index, cancellationToken).ConfigureAwait(ResumeOnScheduler);
        _registry.Load(store.ReadReplicaMeta());
        SetAllPeerAddresses();
        Interlocked.Increment(ref _snapshotsRestored);
        Volatile.Write(ref _lastRestoredIndex, index);
        ReplicatedStoreLog.Restored(_logger, MemberId, index, store.Revision);
    }

    /// <summary>Snapshots this member restored since it started (for tests).</summary>
    internal int SnapshotsRestored => Volatile.Read(ref _snapshotsRestored);

    /// <summary>The index of the last snapshot this member restored since it started, 0 for none (for tests).</summary>
    internal ulong LastRestoredIndex => Volatile.Read(ref _lastRestoredIndex);

    private int _snapshotsRestored;
    private ulong _lastRestoredIndex;
}
