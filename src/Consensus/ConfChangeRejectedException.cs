namespace EmbeddedRaft.Consensus;

/// <summary>Why a configuration change was refused.</summary>
public enum ConfChangeRejectReason
{
    /// <summary>The new configuration would have no voters.</summary>
    RemovesAllVoters = 1,
    /// <summary>More than one voter would change in a single step; use joint consensus.</summary>
    TooManyVoterChanges = 2,
    /// <summary>The configuration is joint: leave it before entering another or changing it in one step.</summary>
    AlreadyJoint = 3,
    /// <summary>A request to leave a joint configuration while the configuration is not joint.</summary>
    NotJoint = 4,
    /// <summary>Another configuration change is proposed but not yet applied; retry once it is.</summary>
    ChangePending = 5,
    /// <summary>A node id that was removed from the cluster; ids are never reused.</summary>
    IdReused = 6,
    /// <summary>
    /// The request itself is wrong: node id 0, a node named twice, a change that would do
    /// nothing (adding an existing voter, removing a non-member), or no changes with a joint transition.
    /// </summary>
    InvalidRequest = 7,
}

/// <summary>
/// A configuration change was refused; nothing was appended to the log. <see cref="Reason"/>
/// says why and the message names the nodes involved.
/// </summary>
public sealed class ConfChangeRejectedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ConfChangeRejectedException(ConfChangeRejectReason reason, string message)
        : base(message)
    {
        Reason = reason;
    }

    /// <summary>Creates the exception (reason <see cref="ConfChangeRejectReason.InvalidRequest"/>).</summary>
    public ConfChangeRejectedException()
        : this(ConfChangeRejectReason.InvalidRequest, "Configuration change rejected.")
    {
    }

    /// <summary>Creates the exception (reason <see cref="ConfChangeRejectReason.InvalidRequest"/>).</summary>
    public ConfChangeRejectedException(string message)
        : this(ConfChangeRejectReason.InvalidRequest, message)
    {
    }

    /// <summary>Creates the exception (reason <see cref="ConfChangeRejectReason.InvalidRequest"/>).</summary>
    public ConfChangeRejectedException(string message, Exception innerException)
        : base(message, innerException)
    {
        Reason = ConfChangeRejectReason.InvalidRequest;
    }

    /// <summary>Why the change was refused.</summary>
    public ConfChangeRejectReason Reason { get; }
}
