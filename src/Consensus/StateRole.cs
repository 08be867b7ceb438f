namespace EmbeddedRaft.Consensus;

/// <summary>The role a node plays (Raft §5.1, plus the PreVote phase of thesis §9.6).</summary>
public enum StateRole
{
    /// <summary>Passive: answers leaders and candidates.</summary>
    Follower = 0,
    /// <summary>Asking whether it could win an election, without disturbing anyone's term.</summary>
    PreCandidate = 1,
    /// <summary>Campaigning for votes in a new term.</summary>
    Candidate = 2,
    /// <summary>Accepts proposals and replicates the log.</summary>
    Leader = 3,
}
