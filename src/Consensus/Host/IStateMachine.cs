namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// The application's replicated state, driven by a <see cref="RaftNode{TResult}"/>: it applies
/// committed commands in log order, captures and restores snapshots, and reports how far it has
/// durably applied (etcd's consistent index) so that a restart replays only what it has not.
/// </summary>
/// <remarks>
/// <para>Threading: the node calls <see cref="ApplyAsync"/>, <see cref="CreateSnapshot"/> and
/// <see cref="RestoreAsync"/> one at a time, never concurrently with each other, from its apply
/// pipeline (on <see cref="RaftNodeOptions.Scheduler"/> when set). <see cref="AppliedIndex"/> is
/// read once, by <see cref="RaftNode{TResult}.StartAsync"/>. Apply must be deterministic: every
/// replica applies the same commands in the same order and must reach the same state.</para>
/// <para>An exception from any member stops the node for good (fail-stop, as etcd panics on an
/// apply error): replicas can no longer be known to agree.</para>
/// </remarks>
/// <typeparam name="TResult">What applying one command returns to its proposer.</typeparam>
public interface IStateMachine<TResult>
{
    /// <summary>
    /// The index of the last log entry whose effects are durable in the state machine (0 for an
    /// empty or purely in-memory one). Read at start: entries after it are applied again; when it
    /// is below the newest snapshot the node restores that snapshot first.
    /// </summary>
    ulong AppliedIndex { get; }

    /// <summary>
    /// Applies one batch of committed commands, in order, and returns exactly one result per
    /// command (<see cref="CommittedBatch.Commands"/>). The batch may hold no command at all (a
    /// new leader's empty entry, a configuration change): it still moves the applied index to
    /// <see cref="CommittedBatch.LastIndex"/>, which a durable state machine stores with its data.
    /// </summary>
    /// <param name="batch">The commands; only valid until the returned task completes.</param>
    /// <param name="cancellationToken">Cancelled only when the node stops; the node then never calls the state machine again.</param>
    ValueTask<IReadOnlyList<TResult>> ApplyAsync(CommittedBatch batch, CancellationToken cancellationToken);

    /// <summary>
    /// Captures the state as of the last batch applied, synchronously and cheaply (a read
    /// transaction, an immutable root): the node writes it out later, off its loop, while applying
    /// continues. <see cref="IStateMachineSnapshot.Index"/> must be that batch's
    /// <see cref="CommittedBatch.LastIndex"/>.
    /// </summary>
    IStateMachineSnapshot CreateSnapshot();

    /// <summary>
    /// Replaces the whole state by the snapshot at <paramref name="index"/>, read from
    /// <paramref name="data"/> as a stream (never whole in memory). Afterwards the state is as of
    /// <paramref name="index"/>.
    /// </summary>
    ValueTask RestoreAsync(ulong index, Stream data, CancellationToken cancellationToken);
}
