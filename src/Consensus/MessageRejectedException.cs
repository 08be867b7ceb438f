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

/// <summary>
/// A message was refused without changing any state. The node stays healthy; the host may log
/// and drop the message (or close the connection it came on).
/// </summary>
public sealed class MessageRejectedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public MessageRejectedException(MessageRejectReason reason, string message)
        : base(message)
    {
        Reason = reason;
    }

    /// <summary>Creates the exception (reason <see cref="MessageRejectReason.Malformed"/>).</summary>
    public MessageRejectedException()
        : this(MessageRejectReason.Malformed, "Message rejected.")
    {
    }

    /// <summary>Creates the exception (reason <see cref="MessageRejectReason.Malformed"/>).</summary>
    public MessageRejectedException(string message)
        : this(MessageRejectReason.Malformed, message)
    {
    }

    /// <summary>Creates the exception (reason <see cref="MessageRejectReason.Malformed"/>).</summary>
    public MessageRejectedException(string message, Exception innerException)
        : base(message, innerException)
    {
        Reason = MessageRejectReason.Malformed;
    }

    /// <summary>Why the message was refused.</summary>
    public MessageRejectReason Reason { get; }
}
