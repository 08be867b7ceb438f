using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Membership;

/// <summary>
/// Computes the configuration that results from applying a <see cref="ConfChange"/> to a
/// configuration, or refuses it with a <see cref="ConfChangeRejectedException"/> (the facts
/// of etcd-io/raft's confchange.Changer, on immutable <see cref="ConfState"/> values).
/// </summary>
/// <remarks>
/// <para>Single step (Raft thesis §4.1): at most one voter may change, and never while joint.</para>
/// <para>Entering joint (thesis §4.3): the current voters become the outgoing half, the changes
/// apply to the incoming half. A voter demoted to learner while it is an outgoing voter waits in
/// <see cref="ConfState.LearnersNext"/> and keeps voting until the joint state is left.</para>
/// <para>Leaving joint: learners-next become learners; outgoing voters that are neither incoming
/// voters nor learners leave the cluster.</para>
/// <para>A node that leaves the cluster joins <see cref="ConfState.Removed"/>; adding it again is refused.</para>
/// </remarks>
internal static class ConfChanger
{
    public static ConfState Apply(ConfState current, ConfChange change)
    {
        ArgumentNullException.ThrowIfNull(current);
        ArgumentNullException.ThrowIfNull(change);

        if (change.IsLeaveJoint)
        {
            if (change.Transition != ConfChangeTransition.Auto)
            {
                throw Reject(ConfChangeRejectReason.InvalidRequest, $"a request with no changes leaves a joint configuration and takes transition Auto, not {change.Transition}");
            }

            return LeaveJoint(current);
        }

        return change.Transition switch
        {
            ConfChangeTransition.Auto when change.Changes.Count == 1 => Simple(current, change),
            ConfChangeTransition.Auto or ConfChangeTransition.JointImplicit => EnterJoint(current, change, autoLeave: true),
            ConfChangeTransition.JointExplicit => EnterJoint(current, change, autoLeave: false),
            _ => Simple(current, change),
        };
    }

    private static ConfState Simple(ConfState current, ConfChange change)
    {
        if (current.IsJoint)
        {
            throw Reject(ConfChangeRejectReason.AlreadyJoint, $"the configuration {current} is joint; leave it before changing {Describe(change)}");
        }

        var next = new Builder(current);
        next.ApplyAll(change);
        var changedVoters = new HashSet<ulong>(current.Voters);
        changedVoters.SymmetricExceptWith(next.Incoming);
        if (changedVoters.Count > 1)
        {
            throw Reject(
                ConfChangeRejectReason.TooManyVoterChanges,
                $"{Describe(change)} changes voters {string.Join(", ", changedVoters.Order())} in one step; more than one voter change needs joint consensus");
        }

        return next.Build(outgoing: [], autoLeave: false);
    }

    private static ConfState EnterJoint(ConfState current, ConfChange change, bool autoLeave)
    {
        if (current.IsJoint)
        {
            throw Reject(ConfChangeRejectReason.AlreadyJoint, $"cannot enter a joint configuration for {Describe(change)}: {current} is already joint");
        }

        if (current.Voters.Count == 0)
        {
            throw Reject(ConfChangeRejectReason.RemovesAllVoters, "cannot enter a joint configuration from one with no voters");
        }

        var next = new Builder(current) { Outgoing = [.. current.Voters] };
        next.ApplyAll(change);
        return next.Build(next.Outgoing, autoLeave);
    }

    private static ConfState LeaveJoint(ConfState current)
    {
        if (!current.IsJoint)
        {
            throw Reject(ConfChangeRejectReason.NotJoint, $"cannot leave a joint configuration: {current} is not joint");
        }

        var next = new Builder(current);
        next.Learners.UnionWith(current.LearnersNext);
        next.LearnersNext.Clear();
        foreach (var id in current.VotersOutgoing)
        {
            if (!next.Incoming.Contains(id) && !next.Learners.Contains(id))
            {
                next.Removed.Add(id);
            }
        }

        return next.Build(outgoing: [], autoLeave: false);
    }

    private static string Describe(ConfChange change) => string.Join(' ', change.Changes);

    private static ConfChangeRejectedException Reject(ConfChangeRejectReason reason, string what) =>
        new(reason, $"Configuration change rejected ({reason}): {what}.");

    /// <summary>Mutable sets for one computation.</summary>
    private sealed class Builder(ConfState current)
    {
        public SortedSet<ulong> Incoming { get; } = [.. current.Voters];

        public SortedSet<ulong> Outgoing { get; init; } = [.. current.VotersOutgoing];

        public SortedSet<ulong> Learners { get; } = [.. current.Learners];

        public SortedSet<ulong> LearnersNext { get; } = [.. current.LearnersNext];

        public SortedSet<ulong> Removed { get; } = [.. current.Removed];

        public void ApplyAll(ConfChange change)
        {
            var seen = new HashSet<ulong>();
            foreach (var item in change.Changes)
            {
                if (item.NodeId == 0)
                {
                    throw Reject(ConfChangeRejectReason.InvalidRequest, "node id 0 is reserved");
                }

                if (!seen.Add(item.NodeId))
                {
                    throw Reject(ConfChangeRejectReason.InvalidRequest, $"node {item.NodeId} appears more than once in {Describe(change)}");
                }

                switch (item.Type)
                {
                    case ConfChangeType.AddVoter:
                        MakeVoter(item.NodeId);
                        break;
                    case ConfChangeType.AddLearner:
                        MakeLearner(item.NodeId);
                        break;
                    default:
                        Remove(item.NodeId);
                        break;
                }
            }

            if (Incoming.Count == 0)
            {
                throw Reject(ConfChangeRejectReason.RemovesAllVoters, $"{Describe(change)} would remove every voter");
            }
        }

        private void CheckNotRemoved(ulong id)
        {
            if (Removed.Contains(id))
            {
                throw Reject(ConfChangeRejectReason.IdReused, $"node {id} was removed from the cluster and its id cannot be reused");
            }
        }

        private void MakeVoter(ulong id)
        {
            CheckNotRemoved(id);
            if (Incoming.Contains(id))
            {
                throw Reject(ConfChangeRejectReason.InvalidRequest, $"node {id} is already a voter");
            }

            Learners.Remove(id);
            LearnersNext.Remove(id);
            Incoming.Add(id);
        }

        private void MakeLearner(ulong id)
        {
            CheckNotRemoved(id);
            if (Learners.Contains(id) || LearnersNext.Contains(id))
            {
                throw Reject(ConfChangeRejectReason.InvalidRequest, $"node {id} is already a learner");
            }

            Incoming.Remove(id);

            // An outgoing voter keeps voting until the joint configuration is left.
            if (Outgoing.Contains(id))
            {
                LearnersNext.Add(id);
            }
            else
            {
                Learners.Add(id);
            }
        }

        private void Remove(ulong id)
        {
            if (!Incoming.Contains(id) && !Learners.Contains(id) && !LearnersNext.Contains(id))
            {
                throw Reject(
                    Removed.Contains(id) ? ConfChangeRejectReason.IdReused : ConfChangeRejectReason.InvalidRequest,
                    Removed.Contains(id) ? $"node {id} was already removed" : $"node {id} is not a member");
            }

            Incoming.Remove(id);
            Learners.Remove(id);
            LearnersNext.Remove(id);

            // An outgoing voter stays until the joint configuration is left.
            if (!Outgoing.Contains(id))
            {
                Removed.Add(id);
            }
        }

        public ConfState Build(IEnumerable<ulong> outgoing, bool autoLeave)
        {
            var conf = new ConfState(Incoming, outgoing, Learners, LearnersNext, autoLeave, Removed);
            if (conf.Validate() is { } broken)
            {
                throw new InvariantViolationException($"Configuration change produced an invalid configuration {conf}: {broken}.");
            }

            return conf;
        }
    }
}
