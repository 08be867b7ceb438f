using EmbeddedRaft.Consensus.Host;

namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>
/// The Raft node's view of a <see cref="ReplicatedStore"/>: applies committed batches to the store
/// (<see cref="ReplicatedStore.ApplyBatchAsync"/>), reports the store's consistent index as the
/// applied index, and captures and restores snapshots. It is durable by itself
/// (<see cref="IDurableStateMachine{TResult}"/>): the store's B+tree holds the consistent index with
/// the data, so the node's snapshots by policy copy nothing (they name an index the store has
/// synced), and only a follower that needs a snapshot gets an image, captured when it is sent. Each result is what the proposer's call
/// returns: a response, an <see cref="Exception"/> the store refused the command with (the same on
/// every member: refusals depend only on the replicated state), or a pending compaction.
/// </summary>
/// <remarks>Called by the node's apply pipeline only, one call at a time (see <see cref="IStateMachine{TResult}"/>).</remarks>
internal sealed class ReplicatedStateMachine(ReplicatedStore owner) : IDurableStateMachine<object?>
{
    public ulong AppliedIndex => owner.Mvcc.ConsistentIndex;

    public ValueTask<IReadOnlyList<object?>> ApplyAsync(CommittedBatch batch, CancellationToken cancellationToken) =>
        owner.ApplyBatchAsync(batch, cancellationToken);

    public IStateMachineSnapshot CreateSnapshot() => owner.CreateSnapshotCore();

    public ValueTask<ulong> SyncAppliedAsync(CancellationToken cancellationToken) =>
        owner.Mvcc.SyncConsistentIndexAsync(cancellationToken);

    public ValueTask RestoreAsync(ulong index, Stream data, CancellationToken cancellationToken) =>
        owner.RestoreSnapshotCoreAsync(index, data, cancellationToken);
}
