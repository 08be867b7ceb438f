namespace EmbeddedRaft.Consensus.Host;

/// <summary>A point-in-time description of a <see cref="RaftNode{TResult}"/>, for monitoring and tests. Immutable.</summary>
public sealed class RaftNodeStatus
{
    internal RaftNodeStatus(RaftStatus raft, ulong appliedIndex, ulong persistedIndex, ulong snapshotIndex, bool isStopped, Exception? stopCause)
    {
        SnapshotIndex = snapshotIndex;
        Raft = raft;
        AppliedIndex = appliedIndex;
        PersistedIndex = persistedIndex;
        IsStopped = isStopped;
        StopCause = stopCause;
    }

    /// <summary>
    /// The Raft core's status. Its hard state (term, vote, commit index) and applied index are as of
    /// the last Ready the node took that changed them: once this node has answered a proposal, or
    /// applied an entry (<see cref="AppliedIndex"/>), the commit index here is at least that entry's,
    /// with or without ticks. Leader and role are as of the last leader or role change. The
    /// transferee, configuration and replication progress (on a leader) are as of the node's last
    /// tick or leader change: they may lag by one tick.
    /// </summary>
    public RaftStatus Raft { get; }

    /// <summary>The index of the last entry the state machine has applied.</summary>
    public ulong AppliedIndex { get; }

    /// <summary>The index of the last entry written to this node's log (durable when it had to be).</summary>
    public ulong PersistedIndex { get; }

    /// <summary>The index of the newest snapshot installed in the log (taken by policy and compacted, or received from a leader); 0 when none.</summary>
    public ulong SnapshotIndex { get; }

    /// <summary>True once the node stopped: disposed, or failed (then <see cref="StopCause"/> is set).</summary>
    public bool IsStopped { get; }

    /// <summary>Why the node stopped for good (a failed write or fsync, a state machine error), or null.</summary>
    public Exception? StopCause { get; }

    /// <summary>The leader this node knows, or 0.</summary>
    public ulong LeaderId => Raft.SoftState.Lead;
}
