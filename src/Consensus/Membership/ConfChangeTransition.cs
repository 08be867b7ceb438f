namespace EmbeddedRaft.Consensus.Membership;

/// <summary>How a <see cref="ConfChange"/> is carried out. Part of the wire format: only append.</summary>
public enum ConfChangeTransition : byte
{
    /// <summary>
    /// One change: the single-step protocol (Raft thesis §4.1). Several changes: joint consensus
    /// (thesis §4.3), left automatically once the joint configuration is applied.
    /// </summary>
    Auto = 0,
    /// <summary>Joint consensus even for one change, left automatically once applied.</summary>
    JointImplicit = 1,
    /// <summary>Joint consensus, left only when the application proposes <see cref="ConfChange.LeaveJoint"/>.</summary>
    JointExplicit = 2,
    /// <summary>
    /// Every change in one step without joint consensus; refused unless at most one voter
    /// changes (for example, adding several learners at once).
    /// </summary>
    Simple = 3,
}
