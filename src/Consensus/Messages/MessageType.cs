namespace EmbeddedRaft.Consensus.Messages;

/// <summary>
/// The kinds of message the Raft core exchanges. Values are part of the wire format
/// (<see cref="MessageCodec"/>): never renumber, only append.
/// </summary>
public enum MessageType : byte
{
    /// <summary>Local: start an election (sent to itself by a follower whose election timer fired, or by <see cref="RawNode.Campaign"/>).</summary>
    Hup = 0,
    /// <summary>Local: tell a leader to broadcast heartbeats.</summary>
    Beat = 1,
    /// <summary>A client proposal: local on the node it was proposed on, forwarded by followers to the leader.</summary>
    Propose = 2,
    /// <summary>AppendEntries request from a leader (Raft §5.3).</summary>
    Append = 3,
    /// <summary>AppendEntries response; <see cref="Message.Reject"/> with a hint on log mismatch.</summary>
    AppendResponse = 4,
    /// <summary>RequestVote (Raft §5.2).</summary>
    Vote = 5,
    /// <summary>RequestVote response.</summary>
    VoteResponse = 6,
    /// <summary>InstallSnapshot from a leader to a follower that needs compacted entries.</summary>
    Snapshot = 7,
    /// <summary>Heartbeat from a leader: keeps followers from campaigning and carries a safe commit index.</summary>
    Heartbeat = 8,
    /// <summary>Heartbeat response; echoes the read-index context it answers.</summary>
    HeartbeatResponse = 9,
    /// <summary>Local: the host could not reach a peer (<see cref="RawNode.ReportUnreachable"/>).</summary>
    Unreachable = 10,
    /// <summary>Local: the outcome of sending a snapshot (<see cref="RawNode.ReportSnapshot"/>).</summary>
    SnapshotStatus = 11,
    /// <summary>Local: a leader checks that a quorum was active during the last election timeout.</summary>
    CheckQuorum = 12,
    /// <summary>Request to transfer leadership; <see cref="Message.From"/> is the transferee.</summary>
    TransferLeader = 13,
    /// <summary>From a leader to its transferee: campaign now, without waiting for a timeout.</summary>
    TimeoutNow = 14,
    /// <summary>A read-index request (Raft thesis §6.4); forwarded to the leader by followers.</summary>
    ReadIndex = 15,
    /// <summary>The leader's answer to a forwarded read-index request.</summary>
    ReadIndexResponse = 16,
    /// <summary>PreVote request (Raft thesis §9.6): would you vote for me if I campaigned?</summary>
    PreVote = 17,
    /// <summary>PreVote response.</summary>
    PreVoteResponse = 18,

    /// <summary>
    /// Leader to proposer: a forwarded proposal was refused. <c>Entries</c> are the proposal;
    /// <c>RejectHint</c> is the reason (see <c>RaftCore.EncodeRefusal</c>). Surfaces as
    /// <see cref="RefusedProposal"/> in the proposer's <see cref="Ready"/>.
    /// </summary>
    ProposalRefused = 19,
}
