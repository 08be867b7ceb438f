using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Tracking;

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

/// <summary>A point-in-time description of a node, for monitoring and tests.</summary>
public sealed class Status
{
    internal Status()
    {
    }

    /// <summary>This node's id.</summary>
    public ulong Id { get; internal init; }

    /// <summary>Current term, vote and commit index.</summary>
    public HardState HardState { get; internal init; }

    /// <summary>Current leader and role.</summary>
    public SoftState SoftState { get; internal init; }

    /// <summary>Last index applied by the application (as reported through <see cref="RawNode.Advance"/>).</summary>
    public ulong Applied { get; internal init; }

    /// <summary>The node leadership is being transferred to, or 0.</summary>
    public ulong LeadTransferee { get; internal init; }

    /// <summary>The active configuration.</summary>
    public ConfState Config { get; internal init; } = ConfState.Empty;

    /// <summary>Replication progress per member; empty unless this node is the leader.</summary>
    public IReadOnlyDictionary<ulong, ProgressStatus> Progress { get; internal init; } = new Dictionary<ulong, ProgressStatus>();
}
