namespace EmbeddedRaft.Consensus;

/// <summary>Why a proposal was not appended to the log.</summary>
public enum ProposalDropReason
{
    /// <summary>No leader is known (an election is in progress); retry later.</summary>
    NoLeader = 1,
    /// <summary>This node is a follower and <see cref="RaftOptions.DisableProposalForwarding"/> is set.</summary>
    ForwardingDisabled = 2,
    /// <summary>The leader is transferring leadership; proposals resume under the next leader.</summary>
    LeadershipTransferInProgress = 3,
    /// <summary>The leader's uncommitted log would exceed <see cref="RaftOptions.MaxUncommittedEntriesBytes"/>.</summary>
    UncommittedSizeLimitExceeded = 4,
    /// <summary>This node leads but is no longer a voter of the configuration (it was removed or demoted).</summary>
    NotInConfiguration = 5,
}

/// <summary>
/// A proposal was refused and will not be committed; the facts are in <see cref="Reason"/>.
/// Nothing was appended, so the caller may safely retry (possibly on another node).
/// </summary>
public sealed class ProposalDroppedException : Exception
{
    /// <summary>Creates the exception for <paramref name="reason"/>.</summary>
    public ProposalDroppedException(ProposalDropReason reason)
        : base($"Proposal dropped: {reason}.")
    {
        Reason = reason;
    }

    /// <summary>Creates the exception (reason <see cref="ProposalDropReason.NoLeader"/>).</summary>
    public ProposalDroppedException()
        : this(ProposalDropReason.NoLeader)
    {
    }

    /// <summary>Creates the exception with a custom message.</summary>
    public ProposalDroppedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a custom message and cause.</summary>
    public ProposalDroppedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Why the proposal was dropped.</summary>
    public ProposalDropReason Reason { get; }
}
