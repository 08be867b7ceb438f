namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>A replicated store member's state at one moment (<see cref="ReplicatedStore.Status"/>), for monitoring and tests. Immutable.</summary>
public sealed class ReplicatedStoreStatus
{
    /// <summary>This member's id.</summary>
    public ulong MemberId { get; init; }

    /// <summary>The cluster's id (0 while a member that joined has not yet received the registry).</summary>
    public ulong ClusterId { get; init; }

    /// <summary>The leader this member knows, or 0 when none is known.</summary>
    public ulong LeaderId { get; init; }

    /// <summary>This member's Raft term.</summary>
    public ulong RaftTerm { get; init; }

    /// <summary>The index of the last log entry this member knows to be committed (as of its last tick, and never below <see cref="RaftAppliedIndex"/>).</summary>
    public ulong RaftIndex { get; init; }

    /// <summary>The index of the last log entry this member has applied to its store.</summary>
    public ulong RaftAppliedIndex { get; init; }

    /// <summary>The store's current revision.</summary>
    public long Revision { get; init; }

    /// <summary>The store's compaction revision (-1 when never compacted).</summary>
    public long CompactRevision { get; init; }

    /// <summary>The size of the store's B+tree file in bytes.</summary>
    public long DbSizeBytes { get; init; }

    /// <summary>True when this member is a learner (receives the log, does not vote).</summary>
    public bool IsLearner { get; init; }

    /// <summary>The alarms raised.</summary>
    public StoreAlarms Alarms { get; init; }

    /// <summary>Why the member stopped for good (its Raft node failed: a log write, an apply error), or null while it runs.</summary>
    public Exception? StoppedCause { get; init; }
}
