namespace EmbeddedRaft.Consensus.Quorum;

/// <summary>
/// A set of voters decided by simple majority (Raft §5.2). Immutable; ids kept ascending.
/// </summary>
internal sealed class MajorityConfig
{
    public MajorityConfig(IEnumerable<ulong> ids)
    {
        var array = ids.Distinct().ToArray();
        Array.Sort(array);
        Ids = array;
    }

    public static MajorityConfig Empty { get; } = new([]);

    /// <summary>Voter ids, ascending, distinct.</summary>
    public IReadOnlyList<ulong> Ids { get; }

    public int Count => Ids.Count;

    public bool Contains(ulong id)
    {
        // Configurations are tiny (usually 3 or 5 voters); a linear scan beats hashing.
        for (var i = 0; i < Ids.Count; i++)
        {
            if (Ids[i] == id)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// The largest index acknowledged by a majority: sort the acked indexes and take the one a
    /// quorum has reached. Voters with no acknowledgement count as 0. An empty configuration
    /// returns <see cref="ulong.MaxValue"/> so that it never constrains a joint configuration.
    /// </summary>
    public ulong CommittedIndex(IAckedIndexer indexer)
    {
        var n = Ids.Count;
        if (n == 0)
        {
            return ulong.MaxValue;
        }

        Span<ulong> acked = n <= 16 ? stackalloc ulong[n] : new ulong[n];
        for (var i = 0; i < n; i++)
        {
            acked[i] = indexer.TryGetAckedIndex(Ids[i], out var index) ? index : 0;
        }

        acked.Sort();

        // Ascending order: the element at n - quorum is acked by at least quorum voters.
        return acked[n - ((n / 2) + 1)];
    }

    /// <summary>
    /// Tallies votes: <paramref name="votes"/> maps voter id to its vote; voters missing from it
    /// have not voted yet. An empty configuration wins (by convention, as in etcd).
    /// </summary>
    public VoteResult Tally(IReadOnlyDictionary<ulong, bool> votes)
    {
        if (Ids.Count == 0)
        {
            return VoteResult.Won;
        }

        int yes = 0, missing = 0;
        for (var i = 0; i < Ids.Count; i++)
        {
            if (!votes.TryGetValue(Ids[i], out var vote))
            {
                missing++;
            }
            else if (vote)
            {
                yes++;
            }
        }

        var quorum = (Ids.Count / 2) + 1;
        if (yes >= quorum)
        {
            return VoteResult.Won;
        }

        return yes + missing >= quorum ? VoteResult.Pending : VoteResult.Lost;
    }

    public override string ToString() => $"({string.Join(' ', Ids)})";
}
