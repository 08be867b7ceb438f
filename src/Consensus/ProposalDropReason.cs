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
