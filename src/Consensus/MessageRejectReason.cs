namespace EmbeddedRaft.Consensus;

/// <summary>Why <see cref="RawNode.Step"/> refused a message.</summary>
public enum MessageRejectReason
{
    /// <summary>A local-only message type (tick, beat, ...) arrived as if from the network.</summary>
    LocalMessageType = 1,
    /// <summary>A response from a node that is not in the configuration.</summary>
    UnknownPeer = 2,
    /// <summary>The message is structurally invalid or contradicts what this node knows is committed.</summary>
    Malformed = 3,
}
