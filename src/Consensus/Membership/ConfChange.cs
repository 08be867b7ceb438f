namespace EmbeddedRaft.Consensus.Membership;

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
