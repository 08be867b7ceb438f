namespace EmbeddedRaft.Consensus.Messages;

/// <summary>
/// A cluster configuration as recorded in snapshots and the initial state: the voters of the
/// (possibly joint) configuration, the learners, and the ids removed from the cluster (which
/// are never reused). Joint consensus (Raft thesis §4.3) uses <see cref="VotersOutgoing"/>; a
/// simple configuration leaves it empty. Immutable.
/// </summary>
/// <remarks>
/// Which configuration a storage returns on restart is stated once, on
/// <see cref="IRaftStorage.InitialState"/>: the one as of the applied index.
/// </remarks>
public sealed class ConfState : IEquatable<ConfState>
{
    private static readonly ulong[] s_none = [];

    /// <summary>Creates a configuration; the lists are copied and sorted.</summary>
    public ConfState(
        IEnumerable<ulong>? voters = null,
        IEnumerable<ulong>? votersOutgoing = null,
        IEnumerable<ulong>? learners = null,
        IEnumerable<ulong>? learnersNext = null,
        bool autoLeave = false,
        IEnumerable<ulong>? removed = null)
    {
        Voters = Sorted(voters);
        VotersOutgoing = Sorted(votersOutgoing);
        Learners = Sorted(learners);
        LearnersNext = Sorted(learnersNext);
        AutoLeave = autoLeave;
        Removed = Sorted(removed);
    }

    /// <summary>An empty configuration (no voters: the node cannot campaign).</summary>
    public static ConfState Empty { get; } = new();

    /// <summary>The voters of the incoming (or only) majority configuration, ascending.</summary>
    public IReadOnlyList<ulong> Voters { get; }

    /// <summary>The voters of the outgoing configuration while joint; empty otherwise.</summary>
    public IReadOnlyList<ulong> VotersOutgoing { get; }

    /// <summary>Non-voting members that receive the log.</summary>
    public IReadOnlyList<ulong> Learners { get; }

    /// <summary>Outgoing voters that become learners when the joint configuration is left.</summary>
    public IReadOnlyList<ulong> LearnersNext { get; }

    /// <summary>Whether the joint configuration is left automatically once applied.</summary>
    public bool AutoLeave { get; }

    /// <summary>Ids removed from the cluster, ascending: they can never be added again.</summary>
    public IReadOnlyList<ulong> Removed { get; }

    /// <summary>Whether this is a joint configuration (<see cref="VotersOutgoing"/> is not empty).</summary>
    public bool IsJoint => VotersOutgoing.Count > 0;

    /// <summary>Whether <paramref name="id"/> votes in either half of the configuration.</summary>
    public bool IsVoter(ulong id) => Contains(Voters, id) || Contains(VotersOutgoing, id);

    /// <summary>Whether <paramref name="id"/> is a voter or learner (of either half).</summary>
    public bool IsMember(ulong id) => IsVoter(id) || Contains(Learners, id);

    /// <summary>
    /// Describes the first broken rule of a well-formed configuration, or returns null: ids are
    /// not 0; learners are not voters; learners-next are outgoing voters that are not incoming
    /// voters, and only exist while joint; auto-leave only while joint; removed ids are not members.
    /// </summary>
    internal string? Validate()
    {
        foreach (var list in new[] { Voters, VotersOutgoing, Learners, LearnersNext, Removed })
        {
            if (Contains(list, 0))
            {
                return "node id 0 is reserved";
            }
        }

        foreach (var learner in Learners)
        {
            if (IsVoter(learner))
            {
                return $"node {learner} is both a voter and a learner";
            }
        }

        foreach (var next in LearnersNext)
        {
            if (!Contains(VotersOutgoing, next) || Contains(Voters, next) || Contains(Learners, next))
            {
                return $"learner-next {next} must be an outgoing voter only";
            }
        }

        if (AutoLeave && !IsJoint)
        {
            return "auto-leave is set on a configuration that is not joint";
        }

        foreach (var id in Removed)
        {
            if (IsMember(id))
            {
                return $"removed node {id} is still a member";
            }
        }

        return null;
    }

    private static bool Contains(IReadOnlyList<ulong> sorted, ulong id)
    {
        for (var i = 0; i < sorted.Count; i++)
        {
            if (sorted[i] == id)
            {
                return true;
            }
        }

        return false;
    }

    private static ulong[] Sorted(IEnumerable<ulong>? ids)
    {
        if (ids is null)
        {
            return s_none;
        }

        var array = ids.Distinct().ToArray();
        Array.Sort(array);
        return array;
    }

    /// <inheritdoc/>
    public bool Equals(ConfState? other) =>
        other is not null
        && Voters.SequenceEqual(other.Voters)
        && VotersOutgoing.SequenceEqual(other.VotersOutgoing)
        && Learners.SequenceEqual(other.Learners)
        && LearnersNext.SequenceEqual(other.LearnersNext)
        && AutoLeave == other.AutoLeave
        && Removed.SequenceEqual(other.Removed);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as ConfState);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Voters.Count, VotersOutgoing.Count, Learners.Count, AutoLeave);

    /// <inheritdoc/>
    public override string ToString() =>
        $"voters=({string.Join(' ', Voters)})"
        + (VotersOutgoing.Count > 0 ? $"&&({string.Join(' ', VotersOutgoing)})" : string.Empty)
        + (Learners.Count > 0 ? $" learners=({string.Join(' ', Learners)})" : string.Empty)
        + (LearnersNext.Count > 0 ? $" learners_next=({string.Join(' ', LearnersNext)})" : string.Empty)
        + (AutoLeave ? " autoleave" : string.Empty)
        + (Removed.Count > 0 ? $" removed=({string.Join(' ', Removed)})" : string.Empty);
}
