namespace EmbeddedRaft.Consensus;

/// <summary>How the leader confirms it is still leader before answering a read-index request.</summary>
public enum ReadOnlyMode
{
    /// <summary>
    /// Confirm with a quorum by a round of heartbeats (Raft thesis §6.4). Safe whatever the clocks do.
    /// </summary>
    Safe = 0,
    /// <summary>
    /// Answer from the leader lease (thesis §6.4.1): fast, but correct only if clock drift is
    /// bounded. Requires <see cref="RaftOptions.CheckQuorum"/>, which is what makes the lease.
    /// </summary>
    LeaseBased = 1,
}
