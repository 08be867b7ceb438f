using System.Globalization;
using EmbeddedRaft.Consensus;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Mvcc;
using EmbeddedRaft.Mvcc.Leases;
using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.Storage;
using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using Microsoft.Extensions.Time.Testing;

namespace EmbeddedRaft.Simulation.Tests.Simulator;

/// <summary>
/// A cluster of real <see cref="ReplicatedStore"/> members run on one thread: every member's
/// work on one <see cref="DeterministicTaskScheduler"/>, time a <see cref="FakeTimeProvider"/> the
/// simulation advances in steps of <see cref="StepInterval"/>, each member on its own
/// <see cref="FaultInjectingFileSystem"/>, all talking over one seeded <see cref="InProcessNetwork"/>.
/// Every random choice — of the network, the disks, the Raft election jitter, the clients and the
/// nemesis — derives from <see cref="SimulationOptions.Seed"/>, so a run is replayed by its seed.
/// </summary>
/// <remarks>
/// The step loop: run the scheduler until nothing is queued, look at every member (leader, term,
/// applied index, a stop), advance the clock one step (which fires due timers: ticks, client
/// timeouts, delayed messages), repeat. Clients, watchers and the nemesis are tasks on the same
/// scheduler, so they interleave with the members exactly as the seed says. Not thread-safe.
/// </remarks>
internal sealed class StoreSimulation : IDisposable
{
    public static readonly TimeSpan StepInterval = TimeSpan.FromMilliseconds(5);
    public static readonly DateTimeOffset Epoch = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static readonly TimeSpan[] TickRates = [TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(8), TimeSpan.FromMilliseconds(13), TimeSpan.FromMilliseconds(16)];

    private readonly Dictionary<ulong, SimulatedMember> _members = [];
    private readonly Dictionary<ulong, (ulong Leader, ulong Term, ulong Applied, bool Stopped)> _lastSeen = [];
    private readonly List<string> _violations = [];
    private readonly int _threadId = Environment.CurrentManagedThreadId;
    private readonly Random _seeds;
    private ulong _nextMemberId;

    public StoreSimulation(SimulationOptions options)
    {
        Options = options;
        _seeds = new Random(options.Seed);
        Random = new Random(_seeds.Next());
        int memberCount = options.Members != 0 ? options.Members : (Random.Next(2) == 0 ? 3 : 5);
        Time = new FakeTimeProvider(Epoch);
        Scheduler = new DeterministicTaskScheduler();
        BaseLinkFaults = options.BaseLinkDelay > TimeSpan.Zero ? new LinkFaults { Delay = options.BaseLinkDelay, DelayJitter = options.BaseLinkDelay } : LinkFaults.None;
        Network = new InProcessNetwork(new InProcessNetworkOptions { TimeProvider = Time, Seed = _seeds.Next(), SnapshotChunkSizeBytes = 16 * 1024, DefaultLinkFaults = BaseLinkFaults });
        InitialMembers = Enumerable.Range(1, memberCount).Select(i => Info((ulong)i)).ToArray();
        foreach (var info in InitialMembers)
        {
            NewMember(info.Id);
        }

        _nextMemberId = (ulong)memberCount + 1;
    }

    public SimulationOptions Options { get; }

    /// <summary>The harness's own random choices (which member a client picks is the client's own random).</summary>
    public Random Random { get; }

    public FakeTimeProvider Time { get; }

    public DeterministicTaskScheduler Scheduler { get; }

    public InProcessNetwork Network { get; }

    /// <summary>What every link does when the nemesis injects nothing (<see cref="SimulationOptions.BaseLinkDelay"/>).</summary>
    public LinkFaults BaseLinkFaults { get; }

    public SimulationTrace Trace { get; } = new();

    public RaftSafetyObserver Raft { get; } = new();

    public IReadOnlyList<MemberInfo> InitialMembers { get; }

    public IReadOnlyDictionary<ulong, SimulatedMember> Members => _members;

    /// <summary>Violations seen while running (a member stopped by a broken invariant, Raft safety); the final checks add theirs.</summary>
    public IReadOnlyList<string> Violations => [.. Raft.Violations, .. _violations];

    /// <summary>Simulated time since the start.</summary>
    public TimeSpan Now => Time.GetUtcNow() - Epoch;

    /// <summary>Simulated time since the start, in ticks (the history's clock).</summary>
    public long NowTicks => Now.Ticks;

    public long Steps { get; private set; }

    /// <summary>Write-ahead-log fsyncs a slow disk delayed so far.</summary>
    public long SlowFsyncs { get; private set; }

    public IEnumerable<SimulatedMember> Running => _members.Values.Where(m => m.State == MemberState.Running && m.Store is not null);

    /// <summary>A new seed for a part of the run (a client, the nemesis), drawn in a fixed order.</summary>
    public int NextSeed() => _seeds.Next();

    public static MemberInfo Info(ulong id, bool learner = false) =>
        new(id, $"m{id}", [$"tcp://10.0.0.{id}:2380"], [$"http://10.0.0.{id}:2379"], learner);

    public void Record(string line)
    {
        if (Environment.CurrentManagedThreadId != _threadId)
        {
            // Work escaped the deterministic scheduler: the run is no longer a function of its seed.
            lock (_violations)
            {
                _violations.Add($"off-thread event (work escaped the deterministic scheduler): {line}\n{Environment.StackTrace}");
            }

            return;
        }

        Trace.Add(Now, line);
    }

    /// <summary>When the first violation was seen (the trace up to it is what the report prints).</summary>
    public TimeSpan? FirstViolationAt { get; private set; }

    public void AddViolation(string violation)
    {
        FirstViolationAt ??= Now;
        Record("VIOLATION " + violation);
        lock (_violations)
        {
            _violations.Add(violation);
        }
    }

    /// <summary>A new member id (never reused) with a fresh disk, for a member the nemesis adds.</summary>
    public SimulatedMember NewMember()
    {
        ulong id = _nextMemberId++;
        return NewMember(id);
    }

    /// <summary>
    /// The write-ahead log's fsync seam: on a member whose disk the nemesis made slow, the fsync
    /// starts after a delay on the fake clock, resumed on the simulation's scheduler (the caller's:
    /// the member's sync pipeline runs there), so the run stays a function of its seed.
    /// </summary>
    private ValueTask SlowSyncAsync(SimulatedMember member)
    {
        if (member.SlowSync is not { } range)
        {
            return default;
        }

        var delay = TimeSpan.FromMilliseconds(member.SlowSyncRandom.Next(range.MinMilliseconds, range.MaxMilliseconds + 1));
        SlowFsyncs++;
        return new ValueTask(DelayAsync(delay));
    }

    private async Task DelayAsync(TimeSpan delay) => await Task.Delay(delay, Time, CancellationToken.None);

    /// <summary>
    /// Waits for <paramref name="call"/> at most <paramref name="limit"/> of simulated time, then
    /// throws <see cref="TimeoutException"/> (the call goes on). Not Task.WaitAsync: its completion
    /// runs on the thread pool when the awaited task was made with RunContinuationsAsynchronously (as
    /// the library's are), which takes the continuation off the simulation's thread. Here both wake-ups
    /// (the call's continuation and the fake clock's timer) stay on the simulation's thread.
    /// </summary>
    public async Task<T> WithTimeout<T>(Task<T> call, TimeSpan limit)
    {
        await WhenDoneOrTimedOut(call, limit);
        return await call;
    }

    /// <inheritdoc cref="WithTimeout{T}(Task{T}, TimeSpan)"/>
    public async Task WithTimeout(Task call, TimeSpan limit)
    {
        await WhenDoneOrTimedOut(call, limit);
        await call;
    }

    private async Task WhenDoneOrTimedOut(Task call, TimeSpan limit)
    {
        var done = new TaskCompletionSource<bool>();
        _ = call.ContinueWith(static (_, state) => ((TaskCompletionSource<bool>)state!).TrySetResult(true), done, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, Scheduler);
        using var timer = Time.CreateTimer(static state => ((TaskCompletionSource<bool>)state!).TrySetResult(false), done, limit, Timeout.InfiniteTimeSpan);
        if (!await done.Task)
        {
            throw new TimeoutException($"No answer within {limit.TotalMilliseconds:0} ms of simulated time.");
        }
    }

    /// <summary>Starts every initial member and runs until one leads.</summary>
    public void Start()
    {
        foreach (var info in InitialMembers)
        {
            RunUntilDone(Scheduler.Run(() => StartMemberAsync(_members[info.Id])), $"start of member {info.Id}", TimeSpan.FromSeconds(5));
        }

        RunUntil(() => Running.Any(m => m.TryStatus()?.LeaderId is > 0), TimeSpan.FromSeconds(10));
    }

    /// <summary>Starts (or restarts from its disk) <paramref name="member"/>. Runs on the scheduler.</summary>
    public async Task StartMemberAsync(SimulatedMember member)
    {
        if (member.State == MemberState.Running)
        {
            throw new InvalidOperationException($"{member} is already running (seed {Options.Seed}).");
        }

        var initial = member.Joined ? null : InitialMembers;
        var options = MemberOptions(member, initial);
        var transport = new ObservingTransport(Network.CreateTransport(member.Id), OnSend);
        member.Incarnation++;
        Record($"{member} starting (incarnation {member.Incarnation}{(member.Joined ? ", joining" : string.Empty)})");
        var store = await ReplicatedStore.StartAsync(options, transport);
        member.Store = store;
        member.State = MemberState.Running;
        Record($"{member} started: applied {store.Status.RaftAppliedIndex}, revision {store.Status.Revision}");
    }

    /// <summary>
    /// Crashes <paramref name="member"/>: its disk fails every call (the process is gone), the store
    /// is disposed (unbinding it from the network), and the disk comes back as a restarted machine
    /// finds it: every write not flushed kept, dropped or torn at a sector, as the disk's seed says
    /// (or, with <paramref name="dropUnflushed"/>, every one dropped).
    /// </summary>
    public async Task CrashMemberAsync(SimulatedMember member, string why, bool dropUnflushed = false)
    {
        var store = member.Store ?? throw new InvalidOperationException($"{member} is not running.");
        Record($"{member} crash ({why})");
        member.Disk.Crash();
        member.State = MemberState.Down;
        member.Store = null;
        await DisposeQuietlyAsync(store);
        member.Disk.FailWhen = null;
        member.DiskFailing = false;
        member.Disk.Restart(dropUnflushed);
        _lastSeen.Remove(member.Id);
    }

    /// <summary>Stops a removed member for good (a clean stop: it is no longer in the cluster).</summary>
    public async Task RetireMemberAsync(SimulatedMember member)
    {
        var store = member.Store;
        member.State = MemberState.Removed;
        member.Store = null;
        Record($"{member} retired");
        if (store is not null)
        {
            await DisposeQuietlyAsync(store);
        }

        _lastSeen.Remove(member.Id);
    }

    /// <summary>Runs one step: the scheduler until idle, the members' status, then the clock.</summary>
    public void Step()
    {
        RunScheduler();
        ObserveMembers();
        Time.Advance(StepInterval);
        Steps++;
    }

    /// <summary>Steps until <paramref name="condition"/> holds (true) or <paramref name="limit"/> of simulated time passed (false).</summary>
    public bool RunUntil(Func<bool> condition, TimeSpan limit)
    {
        var deadline = Now + limit;
        while (true)
        {
            RunScheduler();
            ObserveMembers();
            if (condition())
            {
                return true;
            }

            if (Now >= deadline)
            {
                return false;
            }

            Time.Advance(StepInterval);
            Steps++;
        }
    }

    public void RunFor(TimeSpan duration)
    {
        var end = Now + duration;
        RunUntil(() => Now >= end, duration + StepInterval);
    }

    /// <summary>Steps until <paramref name="task"/> completes; a task still running after <paramref name="limit"/> is a liveness violation.</summary>
    public void RunUntilDone(Task task, string what, TimeSpan limit)
    {
        if (!RunUntil(() => task.IsCompleted, limit))
        {
            AddViolation($"{what}: not done after {limit.TotalSeconds:0.#} s of simulated time");
            return;
        }

        if (task.IsFaulted)
        {
            AddViolation($"{what} failed: {task.Exception!.GetBaseException()}");
        }
    }

    /// <summary>Stops every running member (on the scheduler) and the network.</summary>
    public void Dispose()
    {
        foreach (var member in _members.Values.Where(m => m.Store is not null).ToList())
        {
            var store = member.Store!;
            member.Store = null;
            var disposal = Scheduler.Run(() => DisposeQuietlyAsync(store));
            try
            {
                RunUntil(() => disposal.IsCompleted, TimeSpan.FromSeconds(10));
            }
            catch (SimulationAbortedException)
            {
                // A livelocked run cannot stop its members cleanly; they are garbage once the simulation is.
                break;
            }
        }

        Network.Dispose();
    }

    /// <summary>
    /// Runs the scheduler until idle, bounded: work that keeps queueing work without the clock
    /// moving is a livelock, reported as a violation, and the run is abandoned (<see cref="SimulationAbortedException"/>).
    /// </summary>
    private void RunScheduler()
    {
        try
        {
            Scheduler.RunUntilIdle(MaxTasksPerStep);
        }
        catch (InvalidOperationException e) when (e.Message.Contains("livelock", StringComparison.Ordinal))
        {
            AddViolation($"livelock: more than {MaxTasksPerStep} tasks ran in one step without the scheduler going idle");
            throw new SimulationAbortedException("livelock", e);
        }
    }

    private const int MaxTasksPerStep = 200_000;

    private static async Task DisposeQuietlyAsync(ReplicatedStore store)
    {
        try
        {
            await store.DisposeAsync();
        }
        catch (Exception e) when (e is IOException or SimulatedCrashException or ObjectDisposedException or AggregateException or NodeStoppedException)
        {
            // A crashed or failing disk refuses the final sync: that is the point.
        }
    }

    private SimulatedMember NewMember(ulong id)
    {
        var member = new SimulatedMember(id, new FaultInjectingFileSystem(_seeds.Next()), TickRates[Random.Next(TickRates.Length)])
        {
            // Not drawn from _seeds: slow disks add no draw to the runs that never have one.
            SlowSyncRandom = new Random(unchecked((Options.Seed * 7919) + (int)id)),
        };
        _members[id] = member;
        return member;
    }

    private ReplicatedStoreOptions MemberOptions(SimulatedMember member, IReadOnlyList<MemberInfo>? initial) => new()
    {
        MemberId = member.Id,
        DataDirectory = $"/m{member.Id}",
        InitialMembers = initial,
        FileSystem = member.Disk,
        TimeProvider = Time,
        Scheduler = Scheduler,
        BrokenRules = Options.BrokenStoreRules,
        Raft = new RaftNodeOptions
        {
            TickInterval = member.TickInterval,
            Scheduler = Scheduler,
            Raft = new RaftOptions
            {
                ElectionTimeoutTicks = 10,
                HeartbeatTimeoutTicks = 1,
                PreVote = true,
                CheckQuorum = true,
                RandomSeed = (ulong)(uint)((Options.Seed * 1000) + (int)member.Id + (member.Incarnation * 100)),
                BrokenRules = Options.BrokenRaftRules,
            },
            ProposalTimeout = TimeSpan.FromSeconds(1),
            ReadIndexTimeout = TimeSpan.FromSeconds(1),
            ReadIndexRetryInterval = TimeSpan.FromMilliseconds(50),
            SnapshotEveryEntries = Options.SnapshotEveryEntries,
            Log = new DurableRaftLogOptions
            {
                Wal = new WalOptions { Threading = WalThreading.CallerThread, SegmentSizeBytes = 64 * 1024, WriteBufferSizeBytes = 16 * 1024, BeforeSync = () => SlowSyncAsync(member) },
                TimeProvider = Time,
                RetainedEntries = Options.RetainedEntries,
                MetricsNodeId = member.Id,
            },
        },
        Store = new MvccStoreOptions
        {
            Leases = new LeaseOptions
            {
                TimeProvider = Time,
                MinTtlSeconds = 1,
                ExpiryCheckInterval = TimeSpan.FromMilliseconds(100),
                ExpiredReportRetryInterval = TimeSpan.FromMilliseconds(300),
            },
        },
    };

    // Every message sent goes into the trace hash (not its lines): two runs of a seed must send the
    // same messages in the same order, not only show the same client outcomes.
    private void OnSend(Message message)
    {
        Raft.OnSend(message);
        Trace.Mix(((ulong)message.Type << 56) ^ (message.From << 48) ^ (message.To << 40) ^ message.Term);
        Trace.Mix(message.Index ^ (message.LogTerm << 32) ^ ((ulong)message.Entries.Length << 48));
        Trace.Mix(message.Commit ^ (message.Reject ? 1UL << 63 : 0));
    }

    private void ObserveMembers()
    {
        if (FirstViolationAt is null && Raft.Violations.Count > 0)
        {
            FirstViolationAt = Now;
            Record("VIOLATION " + Raft.Violations[0]);
        }

        foreach (var member in _members.Values)
        {
            if (member.State != MemberState.Running || member.Store is not { } store)
            {
                continue;
            }

            if (member.TryStatus() is not { } status)
            {
                continue;
            }

            var seen = (status.LeaderId, status.RaftTerm, status.RaftAppliedIndex, status.StoppedCause is not null);
            if (_lastSeen.TryGetValue(member.Id, out var last) && last == seen)
            {
                continue;
            }

            _lastSeen[member.Id] = seen;
            Record(string.Create(CultureInfo.InvariantCulture, $"{member} leader {status.LeaderId} term {status.RaftTerm} applied {status.RaftAppliedIndex} rev {status.Revision}"));
            if (status.StoppedCause is { } cause && !last.Stopped)
            {
                Record($"{member} stopped: {cause.GetType().Name}: {cause.Message}");
                if (IsBrokenInvariant(cause) || !member.DiskFailing)
                {
                    AddViolation($"{member} stopped by {cause.GetType().Name} with a healthy disk: {cause}");
                }
            }
        }
    }

    private static bool IsBrokenInvariant(Exception cause)
    {
        for (Exception? e = cause; e is not null; e = e.InnerException)
        {
            if (e is InvariantViolationException or CorruptionException)
            {
                return true;
            }
        }

        return false;
    }
}
