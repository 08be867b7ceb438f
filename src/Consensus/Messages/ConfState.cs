namespace EmbeddedRaft.Consensus.Messages;

/// <summary>
/// A cluster configuration as recorded in snapshots and the initial state: the voters of the
/// (possibly joint) configuration and the learners. Joint consensus (Raft thesis §4.3) uses
/// <see cref="VotersOutgoing"/>; a simple configuration leaves it empty.
/// </summary>
public sealed class ConfState : IEquatable<ConfState>
{
    private static readonly ulong[] s_none = [];

    /// <summary>Creates a configuration; the lists are copied and sorted.</summary>
    public ConfState(
        IEnumerable<ulong>? voters = null,
        IEnumerable<ulong>? votersOutgoing = null,
        IEnumerable<ulong>? learners = null,
        IEnumerable<ulong>? learnersNext = null,
        bool autoLeave = false)
    {
        Voters = Sorted(voters);
        VotersOutgoing = Sorted(votersOutgoing);
        Learners = Sorted(learners);
        LearnersNext = Sorted(learnersNext);
        AutoLeave = autoLeave;
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

    /// <summary>Whether the joint configuration is left automatically once committed.</summary>
    public bool AutoLeave { get; }

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
        && AutoLeave == other.AutoLeave;

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
        + (AutoLeave ? " autoleave" : string.Empty);
}
