namespace EmbeddedRaft.Consensus;

/// <summary>
/// A configuration change was refused; nothing was appended to the log. <see cref="Reason"/>
/// says why and the message names the nodes involved.
/// </summary>
public sealed class ConfChangeRejectedException : Exception
{
    /// <summary>Creates the exception.</summary>
    internal ConfChangeRejectedException(ConfChangeRejectReason reason, string message)
        : base(message)
    {
        // Every refusal has a defined reason (one decoded from the wire is checked before it gets here).
        if (!Enum.IsDefined(reason))
        {
            throw new InvariantViolationException($"ConfChangeRejectedException created with undefined reason {(int)reason}.");
        }

        Reason = reason;
    }

    /// <summary>Why the change was refused.</summary>
    public ConfChangeRejectReason Reason { get; }
}
