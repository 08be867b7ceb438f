using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Quorum;

namespace EmbeddedRaft.Consensus.Tracking;

/// <summary>
/// The leader's bookkeeping for the whole configuration (etcd's tracker.ProgressTracker): the
/// joint voter configuration, the learners, a <see cref="Progress"/> per member keyed by node
/// id, and the votes of the current election.
/// Invariant: a progress exists for exactly the ids in <see cref="Voters"/>, <see cref="Learners"/>
/// and <see cref="LearnersNext"/>; learners are never voters of the incoming configuration.
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
        Learners = [];
        LearnersNext = [];
    }

    public int MaxInflight { get; }

    public ulong MaxInflightBytes { get; }

    public JointConfig Voters { get; private set; }

    public IReadOnlyList<ulong> Learners { get; private set; }

    public IReadOnlyList<ulong> LearnersNext { get; private set; }

    public bool AutoLeave { get; private set; }

    public IReadOnlyDictionary<ulong, Progress> Progress => _progress;

    public IReadOnlyDictionary<ulong, bool> Votes => _votes;

    /// <summary>Ids of every member with a progress, ascending (deterministic iteration order).</summary>
    public ulong[] MemberIds { get; private set; } = [];

    /// <summary>Exactly one voter and no learners-in-waiting: decisions need nobody else.</summary>
    public bool IsSingleton => Voters.Incoming.Count == 1 && !Voters.IsJoint;

    public ConfState ToConfState() =>
        new(Voters.Incoming.Ids, Voters.Outgoing.Ids, Learners, LearnersNext, AutoLeave);

    /// <summary>
    /// Replaces the configuration with <paramref name="conf"/>, creating progress for new members
    /// (next = <paramref name="nextIndex"/>) and dropping it for removed ones. Used on start-up
    /// and when a snapshot is restored; incremental membership changes build on this.
    /// </summary>
    public void Reset(ConfState conf, ulong nextIndex)
    {
        foreach (var learner in conf.Learners)
        {
            if (conf.Voters.Contains(learner) || conf.VotersOutgoing.Contains(learner))
            {
                throw new ArgumentException($"Node {learner} is both a voter and a learner in {conf}.", nameof(conf));
            }
        }

        Voters = new JointConfig(new MajorityConfig(conf.Voters), new MajorityConfig(conf.VotersOutgoing));
        Learners = conf.Learners;
        LearnersNext = conf.LearnersNext;
        AutoLeave = conf.AutoLeave;

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

        foreach (var id in ids)
        {
            var isLearner = conf.Learners.Contains(id) || conf.LearnersNext.Contains(id);
            if (_progress.TryGetValue(id, out var pr))
            {
                pr.IsLearner = isLearner;
            }
            else
            {
                _progress[id] = new Progress(nextIndex, MaxInflight, MaxInflightBytes, isLearner);
            }
        }

        MemberIds = [.. ids];
        _votes.Clear();
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
