namespace EmbeddedRaft.Consensus;

/// <summary>How a leader is currently replicating to one follower.</summary>
public enum ProgressState
{
    /// <summary>
    /// The leader does not know where the follower's log matches; it sends at most one append
    /// per heartbeat interval and backs off on rejection until it finds the match.
    /// </summary>
    Probe = 0,
    /// <summary>Steady state: appends are streamed optimistically, limited by the inflight window.</summary>
    Replicate = 1,
    /// <summary>The follower needs compacted entries; a snapshot is in flight and appends pause until it is reported.</summary>
    Snapshot = 2,
}
