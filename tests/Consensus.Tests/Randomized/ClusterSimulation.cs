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
/// changed), linearizable read indexes in quorum-safe mode, and that every node applying the
/// configuration change at an index reaches the same configuration.
/// </summary>
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
    public ClusterSimulation(int seed, int size, bool crashMidReady = false)
    {
        Seed = seed;
        _random = new Random(seed);
        var initial = Fixtures.Ids(size);
        _initialSize = (ulong)size;
        _nextNewId = _initialSize + 1;
        PreVote = _random.Next(2) == 0;
        CheckQuorum = _random.Next(2) == 0;
        Membership = _random.Next(4) != 0;
        foreach (var id in initial)
        {
            var maxMessageBytes = (ulong)_random.Next(0, 200);
            var options = new RaftOptions(id)
            {
                ElectionTimeoutTicks = 10,
                HeartbeatTimeoutTicks = 2,
                PreVote = PreVote,
                CheckQuorum = CheckQuorum,
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
        _nodes[node.Id] = node;
        _ids.Add(node.Id);
        _confChangesChecked[node.Id] = 0;
    }

    /// <summary>Starts a node that has never been part of the cluster: empty storage, no configuration.</summary>
    private void StartNewNode(ulong id)
    {
        var options = new RaftOptions(id)
        {
            ElectionTimeoutTicks = _template.ElectionTimeoutTicks,
            HeartbeatTimeoutTicks = _template.HeartbeatTimeoutTicks,
            PreVote = PreVote,
            CheckQuorum = CheckQuorum,
            RandomSeed = (ulong)Seed * 31 + id,
            MaxSizePerMessageBytes = _template.MaxSizePerMessageBytes,
            MaxInflightMessages = _template.MaxInflightMessages,
            MaxUncommittedEntriesBytes = _template.MaxUncommittedEntriesBytes,
            MaxInflightBytes = _template.MaxInflightBytes,
            MaxCommittedBytesPerReady = _template.MaxCommittedBytesPerReady,
        };
        AddNode(new TestNode(options, new MemoryStorage()));
    }

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
        $"seed={Seed} nodes={_ids.Count} preVote={PreVote} checkQuorum={CheckQuorum} membership={Membership} steps={Steps} committed={_maxCommitted} "
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
            if (roll < 45)
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
                _partition.Clear();
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
        try
        {
            node.Step(m);
        }
        catch (ProposalDroppedException)
        {
            // A forwarded proposal the leader refused: the client would retry.
        }
        catch (ConfChangeRejectedException)
        {
            // A forwarded configuration change the leader refused (e.g. another one is pending).
            _confChangesRejected++;
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

    private void TickOne()
    {
        var id = _ids[_random.Next(_ids.Count)];
        if (!_down.Contains(id))
        {
            _nodes[id].Node.Tick();
        }
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
        // (anywhere) before the read was requested.
        _readRequirement[context] = _maxCommitted;
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
            if (_host is null)
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
