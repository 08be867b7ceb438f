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
    /// <summary>
    /// Raised by the host (<c>RaftNode</c>), not the core: the proposal left this node (forwarded
    /// to a leader, or appended by this node as leader before it lost leadership) and was neither
    /// applied nor refused within <c>RaftNodeOptions.ProposalTimeout</c> — lost on the way,
    /// refused with the refusal lost, or still in flight. Unlike the other reasons the outcome is
    /// unknown: it may still be applied later (at most once).
    /// </summary>
    TimedOut = 6,
    /// <summary>
    /// Raised by the host (<c>RaftNode</c>), not the core: this node appended the proposal as
    /// leader, then lost leadership, and the new leader's log replaced it before it was committed.
    /// It will not be applied.
    /// </summary>
    Overwritten = 7,
}
