using EmbeddedRaft.Consensus.Host;

namespace EmbeddedRaft.Mvcc.Replication;

/// <content>
/// Raft snapshots are the store's B+tree images (docs/architecture.md, "Snapshot images"): capture
/// is a commit plus a read transaction on the apply pipeline, written out later by the node; a
/// lagging member restores the leader's image IN PLACE — the same <see cref="MvccStore"/> swaps its
/// file atomically, so watches open on this member live on (they catch up from the new history, or
/// end compacted) — and everything replicated travels in it: the revisions, the leases with their
/// keys, the member registry (the replica bucket), the compaction marks, the consistent index.
/// </content>
public sealed partial class ReplicatedStore
{
    /// <summary>
    /// Captures the state as of the last applied batch (<see cref="IStateMachine{TResult}.CreateSnapshot"/>):
    /// the store commits what it applied and opens a read transaction on that commit, whose
    /// consistent index is the batch's last index. Blocks the apply pipeline for that one commit.
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
        ReplicatedStoreLog.Restored(_logger, MemberId, index, store.Revision);
    }

    /// <summary>Snapshots this member restored since it started (for tests).</summary>
    internal int SnapshotsRestored => Volatile.Read(ref _snapshotsRestored);

    private int _snapshotsRestored;
}
