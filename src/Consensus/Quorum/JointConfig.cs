namespace EmbeddedRaft.Consensus.Quorum;

/// <summary>
/// A pair of majority configurations (Raft thesis §4.3, joint consensus): a decision needs a
/// majority in both. Outside a membership change <see cref="Outgoing"/> is empty and the pair
/// behaves exactly like <see cref="Incoming"/>.
/// </summary>
internal sealed class JointConfig
{
    public JointConfig(MajorityConfig incoming, MajorityConfig outgoing)
    {
        Incoming = incoming;
        Outgoing = outgoing;
    }

    public MajorityConfig Incoming { get; }

    public MajorityConfig Outgoing { get; }

    public bool IsJoint => Outgoing.Count > 0;

    public bool Contains(ulong id) => Incoming.Contains(id) || Outgoing.Contains(id);

    /// <summary>Every voter of either half, ascending, without duplicates.</summary>
    public IReadOnlyList<ulong> AllIds()
    {
        if (!IsJoint)
        {
            return Incoming.Ids;
        }

        var set = new SortedSet<ulong>(Incoming.Ids);
        set.UnionWith(Outgoing.Ids);
        return [.. set];
    }

    /// <summary>The largest index committed in both halves (an empty half never constrains).</summary>
    public ulong CommittedIndex(IAckedIndexer indexer) =>
        Math.Min(Incoming.CommittedIndex(indexer), Outgoing.CommittedIndex(indexer));

    /// <summary>Won only if won in both halves; lost if lost in either.</summary>
    public VoteResult Tally(IReadOnlyDictionary<ulong, bool> votes)
    {
        var incoming = Incoming.Tally(votes);
        var outgoing = Outgoing.Tally(votes);
        if (incoming == outgoing)
        {
            return incoming;
        }

        return incoming == VoteResult.Lost || outgoing == VoteResult.Lost ? VoteResult.Lost : VoteResult.Pending;
    }

    public override string ToString() => IsJoint ? $"{Incoming}&&{Outgoing}" : Incoming.ToString();
}
