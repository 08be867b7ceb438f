namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// Committed log entries handed to <see cref="IStateMachine{TResult}.ApplyAsync"/> in one call:
/// the commands among them (duplicates already removed) and the index of the last entry covered.
/// </summary>
/// <remarks>
/// Entries that are not commands — a new leader's empty entry, configuration changes, a
/// duplicate of a command already applied — advance <see cref="LastIndex"/> without appearing in
/// <see cref="Commands"/>. Store <see cref="LastIndex"/> with the state (atomically) and report it
/// as <see cref="IStateMachine{TResult}.AppliedIndex"/>: that is etcd's consistent index.
/// </remarks>
public sealed class CommittedBatch
{
    internal CommittedBatch(IReadOnlyList<CommittedCommand> commands, ulong firstIndex, ulong lastIndex, ulong lastTerm)
    {
        Commands = commands;
        FirstIndex = firstIndex;
        LastIndex = lastIndex;
        LastTerm = lastTerm;
    }

    /// <summary>
    /// The commands to apply, in log order; one result each is expected back. Valid only until the
    /// apply completes: the node reuses the list for its next batch (copy what you keep).
    /// </summary>
    public IReadOnlyList<CommittedCommand> Commands { get; }

    /// <summary>The index of the first log entry the batch covers.</summary>
    public ulong FirstIndex { get; }

    /// <summary>The index of the last log entry the batch covers: the applied index once it is applied.</summary>
    public ulong LastIndex { get; }

    /// <summary>The term of the entry at <see cref="LastIndex"/>.</summary>
    public ulong LastTerm { get; }
}
