namespace EmbeddedRaft.Consensus;

/// <summary>A leader's view of one member's replication, as reported by <see cref="RawNode.GetStatus"/>.</summary>
/// <param name="Match">Highest index known replicated on the member.</param>
/// <param name="Next">Next index the leader will send.</param>
/// <param name="State">Probe, replicate or snapshot.</param>
/// <param name="IsLearner">Non-voting member.</param>
/// <param name="RecentActive">Heard from during the current check-quorum window.</param>
/// <param name="IsPaused">The leader is holding back appends (probe sent, window full, or snapshot in flight).</param>
/// <param name="InflightMessages">Append messages sent and not yet acknowledged.</param>
/// <param name="PendingSnapshot">Index of the snapshot in flight, or 0.</param>
public readonly record struct ProgressStatus(
    ulong Match, ulong Next, ProgressState State, bool IsLearner, bool RecentActive, bool IsPaused, int InflightMessages, ulong PendingSnapshot);
