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
