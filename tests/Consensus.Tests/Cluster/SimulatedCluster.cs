using System.Text;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using Microsoft.Extensions.Time.Testing;

namespace EmbeddedRaft.Consensus.Tests.Cluster;

/// <summary>
/// A whole cluster of real <see cref="RaftNode{TResult}"/>s on one thread: every node's loop runs on
/// one <see cref="DeterministicTaskScheduler"/>, time is a <see cref="FakeTimeProvider"/> the
/// cluster advances itself, each node has its own <see cref="FaultInjectingFileSystem"/> (real WAL
/// and snapshotter on it, WAL in caller-thread mode), and the nodes talk over an
/// <see cref="InProcessNetwork"/>. Everything random comes from the seed, so a failing run is
/// replayed exactly by its seed.
/// </summary>
/// <remarks>
/// Tests drive it synchronously: start work (a proposal, a membership change) as a task on the
/// scheduler, then <see cref="Run{T}"/> it: the cluster runs the scheduler until idle, advances
/// the clock by <see cref="StepInterval"/>, and repeats until the task completes or a bound of
/// simulated time passes (then the test fails, naming the seed).
/// </remarks>
internal sealed class SimulatedCluster : IDisposable
{
    public static readonly TimeSpan TickInterval = TimeSpan.FromMilliseconds(10);
    public static readonly TimeSpan StepInterval = TimeSpan.FromMilliseconds(5);
    public static readonly TimeSpan DefaultLimit = TimeSpan.FromSeconds(60);

    private readonly Dictionary<ulong, SimulatedNode> _nodes = [];
    private readonly List<string> _trace = [];
    private readonly HashSet<string> _proposed = new(StringComparer.Ordinal);
    private readonly List<AcknowledgedProposal> _acknowledged = [];
    private readonly Dictionary<string, (ulong Via, int Incarnation, Task<ulong> Task)> _inFlight = new(StringComparer.Ordinal);
    private readonly Dictionary<ulong, IReadOnlyList<AppliedCommand>> _pastHistories = [];
    private readonly Func<ulong, RaftNodeOptions, RaftNodeOptions> _customize;
    private readonly int _threadId = Environment.CurrentManagedThreadId;
    private readonly List<string> _offThread = [];
    private int _nextProposal;

    public SimulatedCluster(int seed, int size, Func<ulong, RaftNodeOptions, RaftNodeOptions>? customize = null, InProcessNetworkOptions? network = null, int snapshotPaddingBytes = 0)
    {
        Seed = seed;
        Random = new Random(seed);
        Time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        Scheduler = new DeterministicTaskScheduler();
        Network = new InProcessNetwork((network ?? InProcessNetworkOptions.Default) with { TimeProvider = Time, Seed = seed });
        SnapshotPaddingBytes = snapshotPaddingBytes;
        _customize = customize ?? ((_, options) => options);
        InitialVoters = Enumerable.Range(1, size).Select(i => (ulong)i).ToArray();
        foreach (ulong id in InitialVoters)
        {
            _nodes[id] = NewNode(id);
        }
    }

    public int Seed { get; }

    /// <summary>The test's own random choices (which node, when to crash): seeded, separate from the network's.</summary>
    public Random Random { get; }

    public FakeTimeProvider Time { get; }

    public DeterministicTaskScheduler Scheduler { get; }

    public InProcessNetwork Network { get; }

    public IReadOnlyList<ulong> InitialVoters { get; }

    public int SnapshotPaddingBytes { get; }

    /// <summary>Every delivered message, snapshot, disk write and flush, apply and log line, in order, stamped with simulated time.</summary>
    public IReadOnlyList<string> Trace => _trace;

    public IReadOnlyCollection<AcknowledgedProposal> Acknowledged => _acknowledged;

    public IEnumerable<ulong> RunningIds => _nodes.Values.Where(n => n.Node is not null).Select(n => n.Id).Order();

    public SimulatedNode this[ulong id] => _nodes[id];

    public RaftNode<ulong> Node(ulong id) => _nodes[id].Node ?? throw new InvalidOperationException($"Node {id} is not running (seed {Seed}).");

    /// <summary>Starts every initial voter and waits for a leader.</summary>
    public ulong StartAll()
    {
        foreach (ulong id in InitialVoters)
        {
            Start(id);
        }

        return WaitForLeader();
    }

    /// <summary>
    /// Starts (or restarts, from its disk) node <paramref name="id"/> with a fresh, empty state
    /// machine. <paramref name="join"/>: a new node that waits to be added instead of bootstrapping.
    /// </summary>
    public void Start(ulong id, bool join = false)
    {
        if (!_nodes.TryGetValue(id, out var simulated))
        {
            simulated = _nodes[id] = NewNode(id);
        }

        if (simulated.Node is not null)
        {
            throw new InvalidOperationException($"Node {id} is already running.");
        }

        simulated.Machine = new HistoryStateMachine(id, Record) { SnapshotPaddingBytes = SnapshotPaddingBytes };
        var options = _customize(id, new RaftNodeOptions
        {
            NodeId = id,
            InitialVoters = join ? null : InitialVoters,
            DataDirectory = "/raft",
            FileSystem = simulated.Disk,
            TimeProvider = Time,
            TickInterval = TickInterval,
            Scheduler = Scheduler,
            Raft = RaftOptions.Default with { ElectionTimeoutTicks = 10, HeartbeatTimeoutTicks = 1, RandomSeed = (ulong)((Seed * 100) + (int)id), PreVote = true, CheckQuorum = true },
            Log = new DurableRaftLogOptions
            {
                Wal = new WalOptions { Threading = WalThreading.CallerThread, SegmentSizeBytes = 64 * 1024, WriteBufferSizeBytes = 16 * 1024 },
                TimeProvider = Time,
                RetainedEntries = 20,
                MetricsNodeId = id,
            },
            SnapshotEveryEntries = 40,
            Logger = new TraceLogger($"n{id}", Record),
        });
        var transport = new TracingTransport(Network.CreateTransport(id), "n", Record);
        var machine = simulated.Machine;
        simulated.Node = Run(Scheduler.Run(async () => await RaftNode<ulong>.StartAsync(options, machine, transport)), $"start of node {id}");
        Record($"n{id} started");
    }

    /// <summary>Disposes node <paramref name="id"/> cleanly (its disk keeps everything it synced).</summary>
    public void Stop(ulong id)
    {
        var simulated = _nodes[id];
        var node = simulated.Node ?? throw new InvalidOperationException($"Node {id} is not running.");
        Run(Scheduler.Run(async () => await node.DisposeAsync()), $"disposal of node {id}");
        KeepPastHistory(simulated);
        simulated.Node = null;
        Record($"n{id} stopped");
    }

    /// <summary>
    /// Crashes node <paramref name="id"/>: its disk fails every call from now on (the process is
    /// gone), the node object is disposed (unbinding it from the network), and the disk restarts
    /// keeping, dropping or tearing every unsynced write. <see cref="Start"/> brings it back.
    /// </summary>
    public void Crash(ulong id)
    {
        var simulated = _nodes[id];
        var node = simulated.Node ?? throw new InvalidOperationException($"Node {id} is not running.");
        simulated.Disk.Crash();
        Run(Scheduler.Run(async () => await node.DisposeAsync()), $"disposal of crashed node {id}");
        KeepPastHistory(simulated);
        simulated.Node = null;
        simulated.Disk.Restart();
        Record($"n{id} crashed");
    }

    /// <summary>Starts a proposal of a new unique command through node <paramref name="via"/>; an acknowledged one is remembered for the checker.</summary>
    public Task<ulong> Propose(ulong via, string? command = null)
    {
        command ??= $"c{_nextProposal++}";
        _proposed.Add(command);
        var node = Node(via);
        var bytes = Encoding.UTF8.GetBytes(command);
        var task = Scheduler.Run(async () =>
        {
            ulong index = await node.ProposeAsync(bytes);
            _acknowledged.Add(new AcknowledgedProposal(command, via, index));
            Record($"ack {command} via n{via} at {index}");
            return index;
        });
        _inFlight[command] = (via, _nodes[via].Incarnation, task);
        return task;
    }

    /// <summary>Proposes through <paramref name="via"/> and runs the cluster until it is applied there, returning the index.</summary>
    public ulong ProposeAndWait(ulong via, string? command = null) => Run(Propose(via, command), $"proposal via node {via}");

    /// <summary>Runs the cluster until <paramref name="task"/> completes; fails the test after <paramref name="limit"/> of simulated time.</summary>
    public T Run<T>(Task<T> task, string what, TimeSpan? limit = null)
    {
        RunUntil(() => task.IsCompleted, what, limit);
        return task.GetAwaiter().GetResult();
    }

    public void Run(Task task, string what, TimeSpan? limit = null)
    {
        RunUntil(() => task.IsCompleted, what, limit);
        task.GetAwaiter().GetResult();
    }

    /// <summary>Runs the cluster until <paramref name="condition"/> holds (checked between steps).</summary>
    public void RunUntil(Func<bool> condition, string what, TimeSpan? limit = null)
    {
        var deadline = Time.GetUtcNow() + (limit ?? DefaultLimit);
        while (true)
        {
            Scheduler.RunUntilIdle();
            if (condition())
            {
                return;
            }

            if (Time.GetUtcNow() >= deadline)
            {
                var stuck = _inFlight.Where(p => !p.Value.Task.IsCompleted).Select(p => $"{p.Key} via n{p.Value.Via} (incarnation {p.Value.Incarnation}{(_nodes[p.Value.Via].Incarnation != p.Value.Incarnation ? ", since stopped" : string.Empty)})").ToList();
                Assert.Fail($"{what}: not done after {limit ?? DefaultLimit} of simulated time (seed {Seed}). Proposals still pending: {(stuck.Count == 0 ? "none" : string.Join(", ", stuck))}. Last trace lines:\n{string.Join("\n", _trace.TakeLast(30))}");
            }

            Time.Advance(StepInterval);
        }
    }

    /// <summary>Runs the cluster for <paramref name="duration"/> of simulated time.</summary>
    public void RunFor(TimeSpan duration)
    {
        var end = Time.GetUtcNow() + duration;
        RunUntil(() => Time.GetUtcNow() >= end, "running for a while", duration + StepInterval);
    }

    /// <summary>Runs until exactly one running node leads and every running node knows it; returns its id.</summary>
    public ulong WaitForLeader(TimeSpan? limit = null)
    {
        ulong leader = 0;
        RunUntil(
            () =>
            {
                var leaders = RunningIds.Select(id => Node(id).Status.LeaderId).Distinct().ToList();
                leader = leaders.Count == 1 ? leaders[0] : 0;
                return leader != 0 && _nodes[leader].Node is { } node && node.Status.Raft.SoftState.Role == StateRole.Leader;
            },
            "waiting for a leader",
            limit);
        return leader;
    }

    /// <summary>Runs until every running node has applied <paramref name="command"/>.</summary>
    public void WaitUntilAppliedEverywhere(string command, TimeSpan? limit = null) =>
        RunUntil(() => RunningIds.All(id => _nodes[id].Machine!.HasApplied(command)), $"'{command}' applied on every running node", limit);

    /// <summary>
    /// The checker's verdict over every running node's history and every earlier incarnation's
    /// (what a crashed node had applied must agree too). Empty when every promise held.
    /// </summary>
    public IReadOnlyList<string> CheckHistories(bool requireAllCaughtUp)
    {
        var histories = new Dictionary<ulong, IReadOnlyList<AppliedCommand>>(_pastHistories);
        foreach (var id in RunningIds)
        {
            histories[id] = [.. _nodes[id].Machine!.History];
        }

        var verdict = ApplyHistoryChecker.Check(histories, _acknowledged, _proposed, requireAllCaughtUp: false).ToList();
        if (requireAllCaughtUp)
        {
            var running = RunningIds.ToDictionary(id => id, id => histories[id]);
            verdict.AddRange(ApplyHistoryChecker.Check(running, _acknowledged, _proposed, requireAllCaughtUp: true));
        }

        return verdict;
    }

    /// <summary>Disposes every running node and the network; leaves the disks for inspection.</summary>
    public void Dispose()
    {
        foreach (var id in RunningIds.ToList())
        {
            try
            {
                Stop(id);
            }
#pragma warning disable CA1031 // Cleanup after a failed test must not hide the failure.
            catch (Exception)
#pragma warning restore CA1031
            {
            }
        }

        Network.Dispose();
    }

    // Each node's disk writes and flushes go into the trace too: one WAL write per persisted Ready.
    private SimulatedNode NewNode(ulong id)
    {
        var disk = new FaultInjectingFileSystem((Seed * 1000) + (int)id);
        disk.BeforeEntering = (kind, path) => Record($"n{id} disk {kind} {path}");
        return new SimulatedNode(id, disk);
    }

    private void KeepPastHistory(SimulatedNode simulated)
    {
        // Keyed apart from live ids: node 3's second incarnation's past is 3_000_002.
        simulated.Incarnation++;
        _pastHistories[(simulated.Id * 1_000_000) + (ulong)simulated.Incarnation] = [.. simulated.Machine!.History];
    }

    /// <summary>
    /// Trace events that happened on another thread than the one driving the cluster: work that
    /// escaped the deterministic scheduler (Task.Run, ConfigureAwait(false) after a real wait, a
    /// thread-pool timer). Any makes a run timing-dependent.
    /// </summary>
    public IReadOnlyList<string> OffThreadEvents
    {
        get
        {
            lock (_offThread)
            {
                return [.. _offThread];
            }
        }
    }

    private void Record(string line)
    {
        if (Environment.CurrentManagedThreadId != _threadId)
        {
            lock (_offThread)
            {
                _offThread.Add(_offThread.Count == 0 ? line + "\n" + Environment.StackTrace : line);
            }

            return;
        }

        RecordOnDriverThread(line);
    }

    private void RecordOnDriverThread(string line) => _trace.Add($"{(Time.GetUtcNow() - new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero)).TotalMilliseconds:F0}ms {line}");
}
