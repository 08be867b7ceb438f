using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Quorum;

namespace EmbeddedRaft.Consensus.Tracking;

/// <summary>
/// The leader's bookkeeping for the whole configuration (etcd's tracker.ProgressTracker): the
/// joint voter configuration, the learners, a <see cref="Progress"/> per member keyed by node
/// id, and the votes of the current election.
/// Invariant: a progress exists for exactly the ids in <see cref="Voters"/>, <see cref="Learners"/>
/// and <see cref="LearnersNext"/>; learners are never voters of either half.
/// </summary>
internal sealed class ProgressTracker : IAckedIndexer
{
    private readonly Dictionary<ulong, Progress> _progress = [];
    private readonly Dictionary<ulong, bool> _votes = [];

    public ProgressTracker(int maxInflight, ulong maxInflightBytes)
    {
        MaxInflight = maxInflight;
        MaxInflightBytes = maxInflightBytes;
        Voters = new JointConfig(MajorityConfig.Empty, MajorityConfig.Empty);
    }

    public int MaxInflight { get; }

    public ulong MaxInflightBytes { get; }

    public JointConfig Voters { get; private set; }

    /// <summary>The configuration as a value (what snapshots and the host persist).</summary>
    public ConfState Config { get; private set; } = ConfState.Empty;

    public IReadOnlyList<ulong> Learners => Config.Learners;

    public IReadOnlyList<ulong> LearnersNext => Config.LearnersNext;

    public bool AutoLeave => Config.AutoLeave;

    public IReadOnlyDictionary<ulong, Progress> Progress => _progress;

    public IReadOnlyDictionary<ulong, bool> Votes => _votes;

    /// <summary>Ids of every member with a progress, ascending (deterministic iteration order).</summary>
    public ulong[] MemberIds { get; private set; } = [];

    /// <summary>Exactly one voter, <paramref name="id"/>, and not joint: its decisions need nobody else.</summary>
    public bool IsSingleton(ulong id) => Voters.Incoming.Count == 1 && !Voters.IsJoint && Voters.Incoming.Contains(id);

    public ConfState ToConfState() => Config;

    /// <summary>
    /// Replaces the configuration with <paramref name="conf"/> (start-up, snapshot restore) and
    /// clears the votes. See <see cref="SwitchTo"/>.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="conf"/> is not a well-formed configuration.</exception>
    public void Reset(ConfState conf, ulong nextIndex)
    {
        if (conf.Validate() is { } broken)
        {
            throw new ArgumentException($"Invalid configuration {conf}: {broken}.", nameof(conf));
        }

        SwitchTo(conf, nextIndex);
        _votes.Clear();
    }

    /// <summary>
    /// Switches to <paramref name="conf"/>: members that stay keep their progress (a promoted
    /// learner or demoted voter keeps its match), new members get one probing from
    /// <paramref name="nextIndex"/>, and members that left lose theirs. Returns the new members.
    /// Invariant afterwards: a progress exists exactly for the voters (both halves) and learners
    /// (including learners-next); <see cref="Progress.IsLearner"/> is set only for <see cref="ConfState.Learners"/>,
    /// since learners-next still vote in the outgoing half.
    /// </summary>
    public List<ulong> SwitchTo(ConfState conf, ulong nextIndex)
    {
        Voters = new JointConfig(new MajorityConfig(conf.Voters), new MajorityConfig(conf.VotersOutgoing));
        Config = conf;

        var ids = new SortedSet<ulong>(conf.Voters);
        ids.UnionWith(conf.VotersOutgoing);
        ids.UnionWith(conf.Learners);
        ids.UnionWith(conf.LearnersNext);
        foreach (var id in _progress.Keys.ToArray())
        {
            if (!ids.Contains(id))
            {
                _progress.Remove(id);
            }
        }

        var added = new List<ulong>();
        foreach (var id in ids)
        {
            var isLearner = conf.Learners.Contains(id);
            if (_progress.TryGetValue(id, out var pr))
            {
                pr.IsLearner = isLearner;
            }
            else
            {
                _progress[id] = new Progress(nextIndex, MaxInflight, MaxInflightBytes, isLearner);
                added.Add(id);
            }
        }

        MemberIds = [.. ids];
        return added;
    }

    public bool TryGetAckedIndex(ulong id, out ulong index)
    {
        if (_progress.TryGetValue(id, out var pr))
        {
            index = pr.Match;
            return true;
        }

        index = 0;
        return false;
    }

    /// <summary>The largest index acknowledged by a quorum of the (joint) configuration.</summary>
    public ulong Committed() => Voters.CommittedIndex(this);

    /// <summary>
    /// Whether a quorum was recently active (Raft thesis §6.2, CheckQuorum). The leader itself
    /// always counts as active.
    /// </summary>
    public bool QuorumActive(ulong selfId)
    {
        var active = new Dictionary<ulong, bool>(_progress.Count);
        foreach (var (id, pr) in _progress)
        {
            if (!pr.IsLearner)
            {
                active[id] = id == selfId || pr.RecentActive;
            }
        }

        return Voters.Tally(active) == VoteResult.Won;
    }

    public void ResetVotes() => _votes.Clear();

    /// <summary>Records a vote; only the first vote of each voter counts.</summary>
    public void RecordVote(ulong id, bool granted) => _votes.TryAdd(id, granted);

    public (int Granted, int Rejected, VoteResult Result) TallyVotes()
    {
        int granted = 0, rejected = 0;
        foreach (var (id, vote) in _votes)
        {
            if (!Voters.Contains(id))
            {
                continue;
            }

            if (vote)
            {
                granted++;
            }
            else
            {
                rejected++;
            }
        }

        return (granted, rejected, Voters.Tally(_votes));
    }
}
