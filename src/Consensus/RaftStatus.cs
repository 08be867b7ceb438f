using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus;

/// <summary>A point-in-time description of a node, for monitoring and tests.</summary>
public sealed class RaftStatus
{
    internal RaftStatus()
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
