namespace EmbeddedRaft.Consensus;

/// <summary>
/// A message was refused without changing any state. The node stays healthy; the host may log
/// and drop the message (or close the connection it came on).
/// </summary>
public sealed class MessageRejectedException : Exception
{
    /// <summary>Creates the exception.</summary>
    internal MessageRejectedException(MessageRejectReason reason, string message)
        : base(message)
    {
        // Every refusal has a defined reason (one decoded from the wire is checked before it gets here).
        if (!Enum.IsDefined(reason))
        {
            throw new InvariantViolationException($"MessageRejectedException created with undefined reason {(int)reason}.");
        }

        Reason = reason;
    }

    /// <summary>Why the message was refused.</summary>
    public MessageRejectReason Reason { get; }
}
