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
        Reason = reason;
    }

    /// <summary>Why the change was refused.</summary>
    public ConfChangeRejectReason Reason { get; }
}
