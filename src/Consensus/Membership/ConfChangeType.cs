namespace EmbeddedRaft.Consensus.Membership;

/// <summary>What one <see cref="ConfChangeItem"/> does to a node. Part of the wire format: only append.</summary>
/// <remarks>
/// Promoting a learner is <see cref="AddVoter"/> on a learner; demoting a voter is
/// <see cref="AddLearner"/> on a voter (as in etcd-io/raft). <see cref="ConfChange"/> has
/// factory methods named after each verb.
/// </remarks>
public enum ConfChangeType : byte
{
    /// <summary>Make the node a voter: a new node, or a learner being promoted.</summary>
    AddVoter = 0,
    /// <summary>Make the node a learner: a new node, or a voter being demoted.</summary>
    AddLearner = 1,
    /// <summary>Remove the node from the configuration. Its id can never be added again.</summary>
    RemoveNode = 2,
}
