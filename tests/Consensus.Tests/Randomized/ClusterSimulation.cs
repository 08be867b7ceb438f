using System.Text;
using EmbeddedRaft.Consensus.Membership;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Tests.Support;

namespace EmbeddedRaft.Consensus.Tests.Randomized;

/// <summary>
/// A randomized, fully deterministic cluster run: every choice comes from one seeded
/// <see cref="Random"/>. The network drops, duplicates, reorders and delays messages, partitions
/// the cluster, crashes nodes, which restart from what they persisted, compacts logs (so
/// snapshots flow), requests leadership transfers and, on most seeds, changes the membership:
/// adds voters and learners (new nodes start empty and join via a snapshot), removes, promotes
/// and demotes members, one step or joint (auto or explicit leave), never reusing an id. After
/// every step the Raft safety properties are checked (paper §5.4, Figure 3): election safety,
/// log matching, leader completeness, state machine safety (committed entries never lost or
/// changed), linearizable read indexes (quorum-safe and lease-based), and that every node
/// applying the configuration change at an index reaches the same configuration.
/// </summary>
/// <remarks>
/// The <see cref="SimulationProfile"/> chooses the host model and the clocks: whether nodes keep
/// stepping and ticking while a Ready is outstanding (taken and persisted, not yet applied and
/// advanced, as under an async host), whether reads are quorum-safe or lease-based, and whether
/// each step ticks one random node (only with quorum-safe reads: the clocks then drift without
/// bound) or every clock advances together, in lockstep or at skewed rates within the bound that
/// <see cref="RaftOptions.LeaseDriftMarginTicks"/> states. Every read is checked against the
/// committed history: its index must cover the highest commit index any node had when the read
/// was requested.
/// </remarks>
internal sealed class ClusterSimulation
{
    private readonly Random _random;
    private readonly List<ulong> _ids = [];
    private readonly RaftOptions _template;
    private readonly ulong _initialSize;
    private readonly Dictionary<ulong, TestNode> _nodes = [];
    private readonly HashSet<ulong> _down = [];
    private readonly List<Message> _inFlight = [];
    private readonly Dictionary<ulong, int> _partition = [];
    private readonly CrashingHost? _host;
    private readonly SimulationProfile _profile;
    private bool _holdingEnabled = true;

    /// <summary>Per node: its clock rate in hundredths of a tick per time step, and the fraction accumulated.</summary>
    private readonly Dictionary<ulong, (int RatePercent, int Accumulated)> _clocks = [];
    private readonly int _maxRatePercent = 100;

    /// <summary>Beyond the bound: per node, the time step until which its clock is stopped (a process pause).</summary>
    private readonly Dictionary<ulong, long> _pausedUntil = [];
    private long _time;
    private int _readyHolds;
    private int _refusalsReported;
    private int _snapshotRequestsAnswered;
    private int _stepsWhileHeld;

    // Checker state.
    private readonly Dictionary<ulong, ulong> _leaderByTerm = [];
    private readonly Dictionary<ulong, (ulong Term, string Data, ulong SeenAtTerm)> _committed = [];
    private readonly Dictionary<string, ulong> _readRequirement = [];
    private ulong _maxCommitted;
    private int _proposals;
    private int _reads;
    private ProposalDropReason? _lastDrop;
    private int _readsAnswered;
    private int _snapshotsDelivered;
    private int _restarts;
    private int _transfers;
    private ulong _nextNewId;
    private int _confChangesProposed;
    private int _confChangesRejected;
    private readonly Dictionary<ulong, ConfState> _configAt = [];
    private readonly Dictionary<ulong, int> _confChangesChecked = [];

    /// <param name="crashMidReady">Handle Readies with a <see cref="CrashingHost"/> (crashes mid-Ready, lost unsynced writes).</param>
    /// <param name="profile">Host model, read mode and clocks (default: <see cref="SimulationProfile.Mixed"/>).</param>
    public ClusterSimulation(int seed, int size, bool crashMidReady = false, SimulationProfile profile = SimulationProfile.Mixed)
    {
        Seed = seed;
        _profile = profile;
        _random = new Random(seed);
        var initial = Fixtures.Ids(size);
        _initialSize = (ulong)size;
        _nextNewId = _initialSize + 1;
        PreVote = _random.Next(2) == 0;
        CheckQuorum = _random.Next(2) == 0;
        Membership = _random.Next(4) != 0;
        HoldReadies = profile switch
        {
            SimulationProfile.Mixed => _random.Next(2) == 0,
            _ => true,
        };
        LeaseReads = profile is SimulationProfile.LeaseLockstep or SimulationProfile.LeaseSkewed or SimulationProfile.LeaseBeyondDriftBound;
        CheckQuorum |= LeaseReads;

        // Lease safety needs followers' clocks at most (E - 1) / (E - margin) times as fast as the
        // leader's (RaftOptions.LeaseDriftMarginTicks); the skewed profile draws rates in that range.
        const int electionTicks = 10;
        var margin = LeaseReads ? 2 + _random.Next(3) : 2;
        _maxRatePercent = profile switch
        {
            SimulationProfile.LeaseSkewed => 100 * (electionTicks - 1) / (electionTicks - margin),
            _ => 100,
        };

        DriftMarginTicks = margin;
        foreach (var id in initial)
        {
            var maxMessageBytes = (ulong)_random.Next(0, 200);
            var options = new RaftOptions(id)
            {
                ElectionTimeoutTicks = electionTicks,
                HeartbeatTimeoutTicks = 2,
                PreVote = PreVote,
                CheckQuorum = CheckQuorum,
                ReadOnlyMode = LeaseReads ? ReadOnlyMode.LeaseBased : ReadOnlyMode.Safe,
                LeaseDriftMarginTicks = margin,
                RandomSeed = (ulong)seed * 31 + id,
                MaxSizePerMessageBytes = maxMessageBytes,
                MaxInflightMessages = _random.Next(1, 8),
                MaxUncommittedEntriesBytes = _random.Next(3) == 0 ? 64UL : 0UL,
                MaxInflightBytes = _random.Next(3) == 0 ? maxMessageBytes + (ulong)_random.Next(1, 200) : 0UL,
                MaxCommittedBytesPerReady = _random.Next(3) == 0 ? (ulong)_random.Next(1, 100) : 0UL,
            };
            AddNode(new TestNode(options, MemoryStorage.WithVoters(initial)));
        }

        _template = _nodes[1].Options;
        _host = crashMidReady ? new CrashingHost(_random, FreshStorage) : null;
    }

    public CrashingHost? Host => _host;

    /// <summary>What node <paramref name="id"/>'s disk held before it first started.</summary>
    private MemoryStorage FreshStorage(ulong id) =>
        id <= _initialSize ? MemoryStorage.WithVoters(Fixtures.Ids((int)_initialSize)) : new MemoryStorage();

    private void AddNode(TestNode node)
    {
        node.Applying = OnApply;
        if (_profile == SimulationProfile.PipelinedReadies)
        {
            node.PipelineDepth = 2 + _random.Next(4);
        }

        _clocks[node.Id] = (100 + _random.Next(_maxRatePercent - 100 + 1), 0);
        _nodes[node.Id] = node;
        _ids.Add(node.Id);
        _confChangesChecked[node.Id] = 0;
    }

    /// <summary>Starts a node that has never been part of the cluster: empty storage, no configuration.</summary>
    private void StartNewNode(ulong id)
    {
        var options = _template with { Id = id, RandomSeed = (ulong)Seed * 31 + id };
        AddNode(new TestNode(options, new MemoryStorage()));
    }

    /// <summary>Whether nodes keep stepping and ticking while a Ready is outstanding.</summary>
    public bool HoldReadies { get; }

    /// <summary>Whether reads are lease-based (and checked as such).</summary>
    public bool LeaseReads { get; }

    /// <summary>The lease drift margin every node runs with.</summary>
    public int DriftMarginTicks { get; }

    /// <summary>Readies held while the node kept stepping or ticking.</summary>
    public int ReadyHolds => _readyHolds;

    /// <summary>Readies taken while the same node had an earlier one outstanding (<see cref="SimulationProfile.PipelinedReadies"/>).</summary>
    public int ReadiesTakenBesideOthers => _nodes.Values.Sum(n => n.TakenBesideOthers);

    /// <summary>Messages stepped and ticks taken by nodes holding a Ready.</summary>
    public int StepsWhileHeld => _stepsWhileHeld;

    /// <summary>Forwarded proposals refused by a leader and reported back to the proposer.</summary>
    public int RefusalsReported => _refusalsReported;

    /// <summary>Readies in which a leader asked its host for a snapshot.</summary>
    public int SnapshotRequestsAnswered => _snapshotRequestsAnswered;

    /// <summary>Whether this seed changes the membership.</summary>
    public bool Membership { get; }

    /// <summary>Configuration changes applied (counted once per index).</summary>
    public int ConfChangesApplied => _configAt.Count;

    /// <summary>Configuration changes applied that entered a joint configuration.</summary>
    public int JointConfigurations => _configAt.Values.Count(c => c.IsJoint);

    public int Seed { get; }

    public bool PreVote { get; }

    public bool CheckQuorum { get; }

    public int Steps { get; private set; }

    public ulong CommittedCount => _maxCommitted;

    public int ReadsAnswered => _readsAnswered;

    public int SnapshotsDelivered => _snapshotsDelivered;

    public int Restarts => _restarts;

    public string Describe() =>
        $"seed={Seed} profile={_profile} nodes={_ids.Count} preVote={PreVote} checkQuorum={CheckQuorum} lease={LeaseReads} margin={DriftMarginTicks} holdReadies={HoldReadies} membership={Membership} steps={Steps} committed={_maxCommitted} "
        + $"proposals={_proposals} reads={_reads} transfers={_transfers} confChanges={_confChangesProposed} proposed/{_confChangesRejected} rejected/{_configAt.Count} applied";

    /// <summary>
    /// The whole run: <paramref name="faultSteps"/> steps of faults, checked after every step, then
    /// the liveness phase. A checker failure is an <see cref="AssertionException"/>; any other
    /// exception is turned into one that describes the run and names the seed that replays it.
    /// </summary>
    public void Run(int faultSteps)
    {
        try
        {
            RunFaults(faultSteps);
            RunLiveness();
        }
        catch (Exception ex) when (ex is not AssertionException)
        {
            throw new AssertionException(
                $"Unexpected {ex.GetType().Name}: {ex.Message} [{Describe()}]. Reproduce with RAFT_SEED={Seed}.\n{ex.StackTrace}", ex);
        }
    }

    /// <summary>The fault phase: random actions with every fault enabled.</summary>
    public void RunFaults(int steps)
    {
        for (var i = 0; i < steps; i++)
        {
            Steps++;
            var roll = _random.Next(100);
            if (roll < 5)
            {
                DeliverBurst();
            }
            else if (roll < 45)
            {
                DeliverOne(faults: true);
            }
            else if (roll < 70)
            {
                TickOne();
            }
            else if (roll < 80)
            {
                ProposeOne();
            }
            else if (roll < 84)
            {
                ReadOne();
            }
            else if (roll < 87)
            {
                Partition();
            }
            else if (roll < 90)
            {
                // With shared clocks partitions heal less often, so that they can outlast an
                // election (with random ticks one node's clock races ahead instead).
                if (_profile is SimulationProfile.Mixed or SimulationProfile.HeldReadies or SimulationProfile.PipelinedReadies || _random.Next(4) == 0)
                {
                    _partition.Clear();
                }
            }
            else if (roll < 92)
            {
                Crash();
            }
            else if (roll < 95)
            {
                RestartOne();
            }
            else if (roll < 97)
            {
                CompactOne();
            }
            else if (roll < 98 || !Membership)
            {
                TransferOne();
            }
            else
            {
                ChangeMembershipOne();
            }

            ProcessReadies();
            Check();
        }
    }

    /// <summary>
    /// The liveness phase: every fault heals, and within a bounded number of rounds a leader
    /// must be elected and a new proposal committed on every node.
    /// </summary>
    public void RunLiveness()
    {
        _host?.DisableCrashes();
        _partition.Clear();
        _holdingEnabled = false;
        foreach (var id in _down.ToArray())
        {
            Restart(id);
        }

        const int maxRounds = 600;
        var marker = $"liveness-{Seed}";
        var proposed = false;
        for (var round = 0; round < maxRounds; round++)
        {
            Steps++;
            foreach (var id in _ids)
            {
                _nodes[id].Node.Tick();
            }

            if (round % 25 == 24)
            {
                // The host snapshots now and then, so that nodes that joined empty can catch up.
                foreach (var id in _ids)
                {
                    Compact(_nodes[id]);
                }
            }

            ProcessReadies();
            DeliverAll();
            Check();

            var leader = _nodes.Values.FirstOrDefault(n => n.Core.Role == StateRole.Leader);
            // A client retries: a proposal accepted by a leader that is then deposed may be lost.
            if (leader is not null && (!proposed || round % 50 == 0))
            {
                try
                {
                    leader.Node.Propose(Encoding.UTF8.GetBytes(marker));
                    proposed = true;
                }
                catch (ProposalDroppedException ex)
                {
                    _lastDrop = ex.Reason;
                }

                ProcessReadies();
                DeliverAll();
                Check();
            }

            if (proposed && leader is not null && Converged(leader, marker))
            {
                return;
            }
        }

        Fail($"liveness: no leader committed a proposal on every member, with the same configuration everywhere, within {maxRounds} rounds after faults healed (last drop: {_lastDrop}); "
            + string.Join(", ", _nodes.Values.Select(n => $"{n.Id}:{n.Core.Role}/t{n.Core.Term}/c{n.Core.Log.Committed}/a{n.AppliedIndex}/l{n.Core.Log.LastIndex()} {n.Config}")));
    }

    /// <summary>
    /// Every member of the leader's configuration applied the marker and everything the leader
    /// committed, and they all hold the same configuration (nodes removed meanwhile need not).
    /// </summary>
    private bool Converged(TestNode leader, string marker)
    {
        var config = leader.Config;
        var members = _ids.Where(config.IsMember).ToList();
        return leader.Core.Log.LastIndex() == leader.Core.Log.Committed
            && members.All(id =>
                _nodes[id].AppliedIndex == leader.Core.Log.Committed
                && _nodes[id].Config.Equals(config)
                && _nodes[id].Applied.Any(e => Fixtures.Text(e) == marker));
    }

    private bool Connected(ulong a, ulong b) =>
        !_down.Contains(a) && !_down.Contains(b)
        && _partition.GetValueOrDefault(a) == _partition.GetValueOrDefault(b);

    private void DeliverOne(bool faults)
    {
        if (_inFlight.Count == 0)
        {
            return;
        }

        // Picking any message (not the oldest) reorders and delays.
        var index = _random.Next(_inFlight.Count);
        var m = _inFlight[index];
        if (faults && _random.Next(100) < 5)
        {
            // Duplicate: deliver a copy now, keep the original in flight.
        }
        else
        {
            _inFlight.RemoveAt(index);
        }

        if (faults && _random.Next(100) < 10)
        {
            Dropped(m);
            return;
        }

        Deliver(m);
    }

    /// <summary>
    /// A fast network for a moment: a few rounds in which every message in flight is delivered
    /// (in random order, with the usual faults) and the nodes handle their Readies. Without it
    /// messages are slow next to the clocks, and an election never completes within a stale
    /// leader's lease — the window where lease reads go wrong.
    /// </summary>
    private void DeliverBurst()
    {
        var rounds = 1 + _random.Next(4);
        for (var round = 0; round < rounds && _inFlight.Count > 0; round++)
        {
            for (var count = _inFlight.Count; count > 0 && _inFlight.Count > 0; count--)
            {
                DeliverOne(faults: true);
            }

            ProcessReadies();
            Check();
        }
    }

    private void DeliverAll()
    {
        for (var guard = 0; _inFlight.Count > 0; guard++)
        {
            if (guard > 100_000)
            {
                Fail("network never quiesced in the liveness phase; last messages: "
                    + string.Join(" | ", _inFlight.Take(12).Select(Scenarios.TraceFormat.Message))
                    + "; nodes: " + string.Join(", ", _nodes.Values.Select(n => $"{n.Id}:{n.Core.Role}/t{n.Core.Term}/c{n.Core.Log.Committed}/a{n.AppliedIndex}/l{n.Core.Log.LastIndex()} {n.Config}")));
            }

            var m = _inFlight[0];
            _inFlight.RemoveAt(0);
            Deliver(m);
            ProcessReadies();
        }
    }

    private void Deliver(Message m)
    {
        if (!Connected(m.From, m.To))
        {
            Dropped(m);
            return;
        }

        var node = _nodes[m.To];
        if (node.IsHolding)
        {
            _stepsWhileHeld++;
        }

        // A forwarded proposal or configuration change the leader refuses is not an error here:
        // it comes back to the proposer as a RefusedProposal in its Ready (counted on apply).
        try
        {
            node.Step(m);
        }
        catch (MessageRejectedException ex) when (ex.Reason == MessageRejectReason.UnknownPeer)
        {
            // A response from a node this one does not know (yet): after a restart its
            // configuration is older than the sender's. A host logs and drops it.
        }

        if (m.Type == MessageType.Snapshot)
        {
            _snapshotsDelivered++;
        }

        if (m.Type == MessageType.Snapshot && !_down.Contains(m.From))
        {
            _nodes[m.From].Node.ReportSnapshot(m.To, succeeded: true);
        }
    }

    private void Dropped(Message m)
    {
        if (!_down.Contains(m.From))
        {
            if (m.Type == MessageType.Snapshot)
            {
                _nodes[m.From].Node.ReportSnapshot(m.To, succeeded: false);
            }
            else if (_random.Next(2) == 0)
            {
                _nodes[m.From].Node.ReportUnreachable(m.To);
            }
        }
    }

    /// <summary>
    /// Time passes. With quorum-safe reads and random clocks one random node ticks (clock rates
    /// then differ without bound, which only lease reads would care about). Otherwise every
    /// running node's clock advances by its rate: in lockstep all tick together; skewed, each
    /// ticks whenever its accumulated fraction reaches a whole tick.
    /// </summary>
    private void TickOne()
    {
        if (_profile is SimulationProfile.Mixed or SimulationProfile.HeldReadies or SimulationProfile.PipelinedReadies)
        {
            var id = _ids[_random.Next(_ids.Count)];
            if (!_down.Contains(id))
            {
                Tick(_nodes[id]);
            }

            return;
        }

        _time++;
        if (_profile == SimulationProfile.LeaseBeyondDriftBound && _random.Next(20) == 0)
        {
            // A pause (GC, VM freeze) stops the leader's clock while the others keep time: its
            // lease outlives the followers' promises, which no drift margin can allow for.
            var leader = _ids.FirstOrDefault(id => !_down.Contains(id) && _nodes[id].Core.Role == StateRole.Leader);
            if (leader != 0)
            {
                _pausedUntil[leader] = _time + 10 + _random.Next(30);
            }
        }

        foreach (var id in _ids)
        {
            if (_pausedUntil.GetValueOrDefault(id) > _time)
            {
                continue;
            }

            var (rate, accumulated) = _clocks[id];
            accumulated += rate;
            for (; accumulated >= 100; accumulated -= 100)
            {
                if (!_down.Contains(id))
                {
                    Tick(_nodes[id]);
                }
            }

            _clocks[id] = (rate, accumulated);
        }
    }

    private void Tick(TestNode node)
    {
        if (node.IsHolding)
        {
            _stepsWhileHeld++;
        }

        node.Node.Tick();
    }

    private void ProposeOne()
    {
        var id = _ids[_random.Next(_ids.Count)];
        if (_down.Contains(id))
        {
            return;
        }

        var data = $"p{_proposals++}-s{Seed}";
        try
        {
            _nodes[id].Node.Propose(Encoding.UTF8.GetBytes(data));
        }
        catch (ProposalDroppedException)
        {
        }
    }

    private void ReadOne()
    {
        var id = _ids[_random.Next(_ids.Count)];
        if (_down.Contains(id))
        {
            return;
        }

        var context = $"r{_reads++}";

        // Linearizability of reads: the read index must cover every entry known committed
        // anywhere before the read was requested — applied by some node, or below some node's
        // commit index (a node only ever commits what a quorum holds).
        var required = _maxCommitted;
        foreach (var n in _nodes.Values)
        {
            required = Math.Max(required, n.Core.Log.Committed);
        }

        _readRequirement[context] = required;
        _nodes[id].Node.ReadIndex(Encoding.UTF8.GetBytes(context));
    }

    private void TransferOne()
    {
        var id = _ids[_random.Next(_ids.Count)];
        if (!_down.Contains(id))
        {
            // Usually asked of the leader; on a follower it is forwarded.
            _nodes[id].Node.TransferLeadership(_ids[_random.Next(_ids.Count)]);
            _transfers++;
        }
    }

    private void Partition()
    {
        _partition.Clear();
        var leader = _ids.FirstOrDefault(id => !_down.Contains(id) && _nodes[id].Core.Role == StateRole.Leader);
        if (leader != 0 && _random.Next(2) == 0)
        {
            // Cut the leader off alone: the majority elects another while the old one may still
            // believe it leads — the window in which a lease read can go stale.
            _partition[leader] = 1;
            return;
        }

        foreach (var id in _ids)
        {
            _partition[id] = _random.Next(2);
        }

    }

    private void Crash()
    {
        var id = _ids[_random.Next(_ids.Count)];
        if (_down.Count < _ids.Count - 1)
        {
            _down.Add(id);
        }
    }

    private void RestartOne()
    {
        if (_down.Count > 0)
        {
            Restart(_down.ElementAt(_random.Next(_down.Count)));
        }
    }

    private void Restart(ulong id)
    {
        _down.Remove(id);
        _restarts++;
        var node = _nodes[id];
        if (_host is null)
        {
            node.Restart(keepApplied: false);
        }
        else
        {
            _host.Restart(node);
        }

        // Messages addressed to the old incarnation are gone with it (the host reports lost snapshots).
        foreach (var lost in _inFlight.Where(m => m.To == id).ToList())
        {
            _inFlight.Remove(lost);
            Dropped(lost);
        }
    }

    private void CompactOne()
    {
        var id = _ids[_random.Next(_ids.Count)];
        if (!_down.Contains(id))
        {
            Compact(_nodes[id]);
        }
    }

    /// <summary>Snapshots at the applied index, with the configuration as of that index (as a host does).</summary>
    private void Compact(TestNode node)
    {
        var applied = node.AppliedIndex;
        var snapshotIndex = node.Storage.Snapshot().Index;
        if (applied > snapshotIndex + 2 && applied <= node.Storage.LastIndex())
        {
            node.Storage.CreateSnapshot(applied, node.Config);
            node.Storage.Compact(applied);
            _host?.Compacted(node);
        }
    }

    /// <summary>
    /// Proposes a random membership change, usually on the leader (else on a random node, which
    /// forwards it): add a voter or learner (a brand-new id, its node started empty), remove,
    /// promote or demote a member, several at once, or leave a joint configuration. Refusals are
    /// expected (another change pending, a random change being invalid) and counted.
    /// </summary>
    private void ChangeMembershipOne()
    {
        var live = _ids.Where(id => !_down.Contains(id)).ToList();
        var leader = live.Select(id => _nodes[id]).FirstOrDefault(n => n.Core.Role == StateRole.Leader);
        var proposer = leader ?? _nodes[live[_random.Next(live.Count)]];
        var config = proposer.Config;
        if (config.Voters.Count == 0)
        {
            return;
        }

        ConfChange change;
        if (config.IsJoint && _random.Next(2) == 0)
        {
            change = ConfChange.LeaveJoint();
        }
        else
        {
            var items = new List<ConfChangeItem>();
            var count = _random.Next(4) == 0 ? 2 : 1;
            var used = new HashSet<ulong>();
            for (var i = 0; i < count; i++)
            {
                var members = config.Voters.Concat(config.Learners).Where(id => !used.Contains(id)).ToList();
                var roll = _random.Next(10);
                ConfChangeItem item;
                if (roll < 3 || members.Count == 0)
                {
                    // Keep the cluster small: at most 7 members ever join beyond the initial ones.
                    if (_nextNewId > _initialSize + 7)
                    {
                        continue;
                    }

                    var id = _nextNewId++;
                    StartNewNode(id);
                    item = new ConfChangeItem(roll < 2 ? ConfChangeType.AddVoter : ConfChangeType.AddLearner, id);
                }
                else
                {
                    var id = members[_random.Next(members.Count)];
                    var isLearner = config.Learners.Contains(id);
                    item = roll switch
                    {
                        < 6 => new ConfChangeItem(ConfChangeType.RemoveNode, id),
                        _ => new ConfChangeItem(isLearner ? ConfChangeType.AddVoter : ConfChangeType.AddLearner, id),
                    };
                }

                used.Add(item.NodeId);
                items.Add(item);
            }

            if (items.Count == 0)
            {
                return;
            }

            var transition = _random.Next(6) switch
            {
                0 => ConfChangeTransition.JointImplicit,
                1 => ConfChangeTransition.JointExplicit,
                2 => ConfChangeTransition.Simple,
                _ => ConfChangeTransition.Auto,
            };
            change = new ConfChange(items, transition);
        }

        _confChangesProposed++;
        try
        {
            proposer.Node.ProposeConfChange(change);
        }
        catch (ConfChangeRejectedException)
        {
            _confChangesRejected++;
        }
        catch (ProposalDroppedException)
        {
        }
    }

    private void ProcessReadies()
    {
        foreach (var id in _ids)
        {
            if (_down.Contains(id))
            {
                continue;
            }

            var node = _nodes[id];
            var before = node.ReadStates.Count;
            if (_host is null && _profile == SimulationProfile.PipelinedReadies)
            {
                HandleReadiesPipelined(node);
            }
            else if (_host is null && HoldReadies)
            {
                HandleReadiesHolding(node);
            }
            else if (_host is null)
            {
                _inFlight.AddRange(node.ReadMessages());
            }
            else if (_host.ReadMessages(node, _inFlight, mayCrash: _down.Count < _ids.Count - 1))
            {
                _down.Add(id);
            }
            for (var i = before; i < node.ReadStates.Count; i++)
            {
                CheckRead(node, node.ReadStates[i]);
            }

            CheckConfChanges(node);
            CountRefusals(node);
        }
    }

    /// <summary>
    /// Refusals reported to proposers: configuration changes refused by the leader are counted;
    /// every refusal must name a reason. A host answering a snapshot request snapshots now.
    /// </summary>
    private void CountRefusals(TestNode node)
    {
        foreach (var refused in node.Refused)
        {
            _refusalsReported++;
            if (refused.Refusal is ConfChangeRejectedException)
            {
                _confChangesRejected++;
            }
            else if (refused.Refusal is not ProposalDroppedException)
            {
                Fail($"refusal: node {node.Id} got a refusal of unexpected kind {refused.Refusal.GetType().Name}");
            }
        }

        node.Refused.Clear();
        if (node.SnapshotRequests > 0)
        {
            node.SnapshotRequests = 0;
            _snapshotRequestsAnswered++;
            Compact(node);
        }
    }

    /// <summary>
    /// The host model of an async host: a held Ready is finished (applied, advanced) only now
    /// and then, and a new one is often taken and held, so the node keeps stepping and ticking
    /// between GetReady and Advance. Outside the fault phase everything is finished.
    /// </summary>
    private void HandleReadiesHolding(TestNode node)
    {
        if (node.Held is not null)
        {
            if (_holdingEnabled && _random.Next(6) != 0)
            {
                return;
            }

            node.FinishHeld();
        }

        for (var guard = 0; node.Node.HasReady(); guard++)
        {
            if (guard > 10_000)
            {
                throw new InvalidOperationException("Node never stops producing Readies.");
            }

            _inFlight.AddRange(node.TakeAndHold());
            if (_holdingEnabled && _random.Next(3) == 0)
            {
                _readyHolds++;
                return;
            }

            node.FinishHeld();
        }
    }

    /// <summary>
    /// The host model of an asynchronous-writes host (RaftNode): Readies are taken and written while
    /// earlier ones are still being made durable, up to the node's pipeline depth; now and then the
    /// oldest become durable, in order, and only then are their acknowledgements and votes sent,
    /// their committed entries applied and the node advanced. Outside the fault phase everything
    /// is finished.
    /// </summary>
    private void HandleReadiesPipelined(TestNode node)
    {
        for (var guard = 0; ; guard++)
        {
            if (guard > 10_000)
            {
                throw new InvalidOperationException("Node never stops producing Readies.");
            }

            while (node.Pipelined > 0 && (!_holdingEnabled || _random.Next(3) == 0))
            {
                _inFlight.AddRange(node.FinishOldestPipelined());
            }

            if (!node.Node.HasReady())
            {
                if (_holdingEnabled || node.Pipelined == 0)
                {
                    return;
                }

                continue;
            }

            _inFlight.AddRange(node.TakePipelined());
            if (_holdingEnabled && _random.Next(3) == 0)
            {
                _readyHolds++;
                return;
            }
        }
    }

    private void OnApply(TestNode node, Entry entry)
    {
        var data = Fixtures.Text(entry);
        if (_committed.TryGetValue(entry.Index, out var known))
        {
            if (known.Term != entry.Term || known.Data != data)
            {
                Fail($"state machine safety: node {node.Id} applied {entry.Term}/{entry.Index} \"{data}\" but {known.Term}/{entry.Index} \"{known.Data}\" was committed");
            }
        }
        else
        {
            _committed[entry.Index] = (entry.Term, data, node.Core.Term);
            _maxCommitted = Math.Max(_maxCommitted, entry.Index);
        }
    }

    /// <summary>Every node that applies the configuration change at an index reaches the same configuration.</summary>
    private void CheckConfChanges(TestNode node)
    {
        var applied = node.ConfChangesApplied;
        for (var i = _confChangesChecked[node.Id]; i < applied.Count; i++)
        {
            var (index, change, result) = applied[i];
            if (_configAt.TryGetValue(index, out var known) && !known.Equals(result))
            {
                Fail($"configuration: node {node.Id} applied {change} at {index} and reached {result}, another node reached {known}");
            }

            _configAt[index] = result;
        }

        _confChangesChecked[node.Id] = applied.Count;
    }

    private void CheckRead(TestNode node, ReadState state)
    {
        _readsAnswered++;
        var context = Encoding.UTF8.GetString(state.RequestContext.Span);
        if (!_readRequirement.TryGetValue(context, out var required))
        {
            Fail($"read index: node {node.Id} got an answer for unknown request \"{context}\"");
        }

        if (state.Index < required)
        {
            Fail($"read index: node {node.Id} answered \"{context}\" with index {state.Index}, but {required} was committed before the request");
        }
    }

    private void Check()
    {
        var logs = new Dictionary<ulong, List<Entry>>();
        foreach (var (id, node) in _nodes)
        {
            var core = node.Core;
            logs[id] = node.LogEntries();

            // Election safety: at most one leader per term (§5.2).
            if (!_down.Contains(id) && core.Role == StateRole.Leader)
            {
                if (_leaderByTerm.TryGetValue(core.Term, out var other) && other != id)
                {
                    Fail($"election safety: nodes {other} and {id} both led term {core.Term}");
                }

                _leaderByTerm[core.Term] = id;

                // Leader completeness (§5.4): a leader of a later term holds every committed entry.
                foreach (var entry in logs[id])
                {
                    if (_committed.TryGetValue(entry.Index, out var c) && core.Term > c.SeenAtTerm && entry.Term != c.Term)
                    {
                        Fail($"leader completeness: leader {id} of term {core.Term} has {entry.Term}/{entry.Index} where {c.Term}/{entry.Index} was committed");
                    }
                }

                var last = core.Log.LastIndex();
                foreach (var (index, c) in _committed)
                {
                    if (core.Term > c.SeenAtTerm && index > last)
                    {
                        Fail($"leader completeness: leader {id} of term {core.Term} lacks committed index {index} (last {last})");
                    }
                }
            }

            // Committed entries are never lost or changed on any node.
            foreach (var entry in logs[id])
            {
                if (entry.Index > core.Log.Committed)
                {
                    break;
                }

                if (_committed.TryGetValue(entry.Index, out var c) && (c.Term != entry.Term || c.Data != Fixtures.Text(entry)))
                {
                    Fail($"committed entry changed: node {id} holds {entry.Term}/{entry.Index} at its committed index, {c.Term}/{entry.Index} was committed");
                }
            }
        }

        // Log matching (§5.3): if two logs have an entry with the same index and term, they are
        // identical up to that index.
        for (var a = 0; a < _ids.Count; a++)
        {
            for (var b = a + 1; b < _ids.Count; b++)
            {
                CheckLogMatching(_ids[a], logs[_ids[a]], _ids[b], logs[_ids[b]]);
            }
        }
    }

    private void CheckLogMatching(ulong idA, List<Entry> a, ulong idB, List<Entry> b)
    {
        if (a.Count == 0 || b.Count == 0)
        {
            return;
        }

        var low = Math.Max(a[0].Index, b[0].Index);
        var high = Math.Min(a[^1].Index, b[^1].Index);
        var matched = false;
        for (var index = high; index >= low && index > 0; index--)
        {
            var ea = a[(int)(index - a[0].Index)];
            var eb = b[(int)(index - b[0].Index)];
            if (matched)
            {
                if (ea.Term != eb.Term || !ea.Data.Span.SequenceEqual(eb.Data.Span))
                {
                    Fail($"log matching: nodes {idA} and {idB} agree at a later index but differ at {index} ({ea.Term} vs {eb.Term})");
                }
            }
            else if (ea.Term == eb.Term)
            {
                matched = true;
                if (!ea.Data.Span.SequenceEqual(eb.Data.Span))
                {
                    Fail($"log matching: nodes {idA} and {idB} have different data at {ea.Term}/{index}");
                }
            }
        }
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void Fail(string what) =>
        throw new AssertionException($"{what}. [{Describe()}] Reproduce with RAFT_SEED={Seed}.");
}

/// <summary>What a <see cref="ClusterSimulation"/> exercises besides its faults.</summary>
public enum SimulationProfile
{
    /// <summary>Quorum-safe reads, one random node ticks per tick step; half of the seeds hold Readies.</summary>
    Mixed,

    /// <summary>Quorum-safe reads, random ticks, and nodes keep stepping and ticking while a Ready is outstanding.</summary>
    HeldReadies,

    /// <summary>Lease reads; every clock ticks in lockstep; Readies held.</summary>
    LeaseLockstep,

    /// <summary>Lease reads; clocks run at rates up to (E - 1) / (E - margin) of each other, the stated bound; Readies held.</summary>
    LeaseSkewed,

    /// <summary>Quorum-safe reads, random ticks, and hosts that take the next Readies while up to 1–4 earlier ones are still being made durable (asynchronous storage writes, as RaftNode does).</summary>
    PipelinedReadies,

    /// <summary>Lease reads in lockstep except that the leader's clock sometimes stops for a while (a process pause): outside the bound, so stale reads are expected, and must be caught.</summary>
    LeaseBeyondDriftBound,
}
