namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// A state machine that is durable by itself: its own files hold its state together with the
/// index of the last entry applied (etcd's consistent index in bbolt), so a restart needs no copy
/// of its data — only the log after that index. A <see cref="RaftNode{TResult}"/> given one takes
/// its snapshots differently (etcd's design; docs/consensus.md, "Snapshots of a durable state
/// machine"):
/// <list type="bullet">
/// <item>A snapshot by policy copies no data: the node makes the state machine durable up to the
/// snapshot's index (<see cref="SyncAppliedAsync"/>), then saves only the snapshot's metadata
/// (index, term, configuration, the deduplication window) and compacts the log behind it.</item>
/// <item>A follower that needs a snapshot gets the state as of the moment it is sent: the node
/// captures <see cref="IStateMachine{TResult}.CreateSnapshot"/> between two applies and streams
/// it, named by the leader's applied index (at or past its newest snapshot), so the image is
/// exactly at the index the follower installs.</item>
/// <item>At start the state machine's <see cref="IStateMachine{TResult}.AppliedIndex"/> must be at
/// or past the newest metadata-only snapshot: nothing else holds the data the log no longer has,
/// and <see cref="RaftNode{TResult}.StartAsync"/> refuses to start otherwise. A snapshot received
/// from a leader (or written by an older version) still carries data and is restored with
/// <see cref="IStateMachine{TResult}.RestoreAsync"/> when the state machine is behind it.</item>
/// </list>
/// </summary>
/// <typeparam name="TResult">What applying one command returns to its proposer.</typeparam>
public interface IDurableStateMachine<TResult> : IStateMachine<TResult>
{
    /// <summary>
    /// Makes every batch applied before the call durable in the state machine's own files and
    /// returns the applied index that is durable now — at least the <see cref="CommittedBatch.LastIndex"/>
    /// of the last batch applied before the call (the node checks this and stops if it is not).
    /// </summary>
    /// <remarks>
    /// Unlike the other members, the node calls this off its apply pipeline, so it may run
    /// concurrently with <see cref="IStateMachine{TResult}.ApplyAsync"/> and
    /// <see cref="IStateMachine{TResult}.RestoreAsync"/>: it must be thread-safe, and the index it
    /// returns must be durable when it returns (a restore may have moved it past the batch).
    /// An exception stops the node (fail-stop), as from any other member.
    /// </remarks>
    /// <param name="cancellationToken">Cancelled only when the node stops.</param>
    ValueTask<ulong> SyncAppliedAsync(CancellationToken cancellationToken);
}
