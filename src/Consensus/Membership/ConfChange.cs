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

/// <summary>One change to one node.</summary>
/// <param name="Type">What happens to the node.</param>
/// <param name="NodeId">The node; never 0.</param>
public readonly record struct ConfChangeItem(ConfChangeType Type, ulong NodeId)
{
    /// <inheritdoc/>
    public override string ToString() => Type switch
    {
        ConfChangeType.AddVoter => $"v{NodeId}",
        ConfChangeType.AddLearner => $"l{NodeId}",
        ConfChangeType.RemoveNode => $"r{NodeId}",
        _ => $"?{(byte)Type}:{NodeId}",
    };
}

/// <summary>
/// A request to change the cluster configuration, proposed with
/// <see cref="RawNode.ProposeConfChange"/> and, once committed, applied by the host with
/// <see cref="RawNode.ApplyConfChange"/>. No changes at all means "leave the joint configuration".
/// Immutable.
/// </summary>
public sealed class ConfChange
{
    /// <summary>Creates a request; <paramref name="changes"/> is copied and applied in order.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="transition"/> or a change type is not defined.</exception>
    public ConfChange(IEnumerable<ConfChangeItem> changes, ConfChangeTransition transition = ConfChangeTransition.Auto)
    {
        ArgumentNullException.ThrowIfNull(changes);
        if (!Enum.IsDefined(transition))
        {
            throw new ArgumentOutOfRangeException(nameof(transition), transition, "Unknown configuration change transition.");
        }

        var items = changes.ToArray();
        foreach (var item in items)
        {
            if (!Enum.IsDefined(item.Type))
            {
                throw new ArgumentOutOfRangeException(nameof(changes), item.Type, "Unknown configuration change type.");
            }
        }

        Changes = items;
        Transition = transition;
    }

    /// <summary>The changes, applied in order.</summary>
    public IReadOnlyList<ConfChangeItem> Changes { get; }

    /// <summary>Single-step or joint; see <see cref="ConfChangeTransition"/>.</summary>
    public ConfChangeTransition Transition { get; }

    /// <summary>True for the request that leaves a joint configuration (no changes).</summary>
    public bool IsLeaveJoint => Changes.Count == 0;

    /// <summary>Adds a new voter.</summary>
    public static ConfChange AddVoter(ulong id) => new([new(ConfChangeType.AddVoter, id)]);

    /// <summary>Adds a new learner (receives the log, does not vote).</summary>
    public static ConfChange AddLearner(ulong id) => new([new(ConfChangeType.AddLearner, id)]);

    /// <summary>Removes a voter or learner for good.</summary>
    public static ConfChange Remove(ulong id) => new([new(ConfChangeType.RemoveNode, id)]);

    /// <summary>Turns a learner into a voter.</summary>
    public static ConfChange Promote(ulong id) => new([new(ConfChangeType.AddVoter, id)]);

    /// <summary>Turns a voter into a learner (through a joint configuration, left automatically).</summary>
    public static ConfChange Demote(ulong id) => new([new(ConfChangeType.AddLearner, id)], ConfChangeTransition.JointImplicit);

    /// <summary>Leaves the current joint configuration (needed after <see cref="ConfChangeTransition.JointExplicit"/>).</summary>
    public static ConfChange LeaveJoint() => new([]);

    /// <inheritdoc/>
    public override string ToString() =>
        IsLeaveJoint ? "leave-joint" : $"{string.Join(' ', Changes)} ({Transition})";
}
