namespace EmbeddedRaft.Consensus;

/// <summary>How the leader confirms it is still leader before answering a read-index request.</summary>
public enum ReadOnlyMode
{
    /// <summary>
    /// Confirm with a quorum by a round of heartbeats (Raft thesis §6.4). Safe whatever the clocks do.
    /// </summary>
    Safe = 0,
    /// <summary>
    /// Answer from the leader lease (thesis §6.4.1) without a round trip while the lease holds:
    /// until <c>ElectionTimeoutTicks - LeaseDriftMarginTicks</c> of the leader's ticks after the
    /// send time of the oldest heartbeat that a quorum (of each half, when joint) has
    /// acknowledged. Otherwise the read falls back to a quorum round, as in <see cref="Safe"/>.
    /// Correct when, while any follower's clock advances <c>E</c> ticks, the leader's advances at
    /// least <c>E - LeaseDriftMarginTicks</c> — with ticks taken at arbitrary moments, follower
    /// clocks may run up to <c>(E - 1) / (E - margin)</c> times as fast as the leader's; a
    /// process pause longer than that is outside the bound. Requires
    /// <see cref="RaftOptions.CheckQuorum"/> (followers' promise not to vote within an election
    /// timeout of hearing from the leader is what makes the lease), and every member of the
    /// cluster must use this mode, since followers keep the promise in the form the lease needs
    /// (across restarts and higher-term messages) only in this mode.
    /// </summary>
    LeaseBased = 1,
}
