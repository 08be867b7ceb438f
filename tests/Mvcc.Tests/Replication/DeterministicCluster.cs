using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using EmbeddedRaft.Consensus;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>
/// Real <see cref="ReplicatedStore"/> members run deterministically (issue 18): every member on one
/// <see cref="DeterministicTaskScheduler"/> with one manual clock, each on its own
/// <see cref="FaultInjectingFileSystem"/>, all on one seeded <see cref="InProcessNetwork"/> on that
/// clock. The test thread alternates "run every queued task" and "advance the clock one step";
/// nothing else runs library code, so the seed alone decides the execution.
/// </summary>
/// <remarks>
/// <para>The trace records, in order, everything observable: each member's disk calls, each message
/// delivered, log lines, operation results, and after every step each member's leader, term,
/// applied index and revision. <see cref="TraceHash"/> is what two runs of one seed must agree on.</para>
/// <para>Escape guard: the disks, the transports, the loggers and the operations record the thread
/// they run on; library work on any other thread (a Task.Run, a ConfigureAwait(false) after a real
/// wait, a thread-pool timer) lands in <see cref="OffThreadEvents"/>, and the tests require it empty.</para>
/// </remarks>
public sealed class DeterministicCluster : IDisposable
{
    public static readonly TimeSpan TickInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>The clock moves this much between two runs of the scheduler.</summary>
    public static readonly TimeSpan StepInterval = TimeSpan.FromMilliseconds(10);

    public static readonly TimeSpan DefaultLimit = TimeSpan.FromSeconds(60);

    private static readonly DateTimeOffset Epoch = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private readonly int _threadId = Environment.CurrentManagedThreadId;
    private readonly List<string> _trace = [];
    private readonly List<string> _offThread = [];
    private readonly Func<ReplicatedStoreOptions, ReplicatedStoreOptions> _configure;
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    public DeterministicCluster(int seed, int size, Func<ReplicatedStoreOptions, ReplicatedStoreOptions>? configure = null)
    {
        Seed = seed;
        Random = new Random(seed);
        Time = new FakeTimeProvider(Epoch);
        Scheduler = new DeterministicTaskScheduler();
        Network = new InProcessNetwork(new InProcessNetworkOptions { TimeProvider = Time, Seed = seed });
        _configure = configure ?? (o => o);
        InitialMembers = Enumerable.Range(1, size).Select(i => ReplicatedCluster.Member((ulong)i)).ToArray();
        TestContext.Out.WriteLine($"DeterministicCluster seed {seed} (replay: DETERMINISTIC_SEED={seed})");
    }

    public int Seed { get; }

    /// <summary>The test's own choices (which member, which key): seeded, apart from the network's.</summary>
    public Random Random { get; }

    public FakeTimeProvider Time { get; }

    public DeterministicTaskScheduler Scheduler { get; }

    public InProcessNetwork Network { get; }

    public IReadOnlyList<MemberInfo> InitialMembers { get; }

    public Dictionary<ulong, FaultInjectingFileSystem> Disks { get; } = [];

    public Dictionary<ulong, ReplicatedStore> Members { get; } = [];

    public ReplicatedStore this[ulong id] => Members[id];

    public IReadOnlyList<string> Trace => _trace;

    /// <summary>Lines recorded, and tasks queued to the scheduler, on a thread other than the driving one (the first of each with its stack).</summary>
    public IReadOnlyList<string> OffThreadEvents
    {
        get
        {
            lock (_offThread)
            {
                return [.. _offThread, .. Scheduler.QueuedOffThread];
            }
        }
    }

    /// <summary>SHA-256 of every trace line so far, in hex.</summary>
    public string TraceHash => Convert.ToHexString(_hash.GetCurrentHash());

    public ReplicatedStoreOptions Options(ulong id, IReadOnlyList<MemberInfo>? initial) => _configure(new ReplicatedStoreOptions
    {
        MemberId = id,
        DataDirectory = $"/member{id}",
        InitialMembers = initial,
        FileSystem = Disk(id),
        TimeProvider = Time,
        Scheduler = Scheduler,
        LoggerFactory = new TraceLoggerFactory($"m{id}", Record),
        Raft = new RaftNodeOptions
        {
            TickInterval = TickInterval,
            Raft = new RaftOptions
            {
                ElectionTimeoutTicks = 10,
                HeartbeatTimeoutTicks = 1,
                PreVote = true,
                CheckQuorum = true,
                RandomSeed = (ulong)((Seed * 100) + (int)id),
            },
            ProposalTimeout = TimeSpan.FromSeconds(5),
            ReadIndexTimeout = TimeSpan.FromSeconds(5),
            ReadIndexRetryInterval = TimeSpan.FromMilliseconds(200),
            Log = new DurableRaftLogOptions
            {
                Wal = new WalOptions { Threading = WalThreading.CallerThread, SegmentSizeBytes = 64 * 1024, WriteBufferSizeBytes = 16 * 1024 },
                RetainedEntries = 5,
            },
        },
    });

    public FaultInjectingFileSystem Disk(ulong id)
    {
        if (!Disks.TryGetValue(id, out var disk))
        {
            disk = new FaultInjectingFileSystem((Seed * 1000) + (int)id);
            disk.BeforeEntering = (kind, path) => Record($"m{id} disk {kind} {path}");
            Disks[id] = disk;
        }

        return disk;
    }

    /// <summary>Starts members 1..size bootstrapped together and runs until they agree on a leader; returns it.</summary>
    public ulong StartAll()
    {
        foreach (var member in InitialMembers)
        {
            Start(member.Id);
        }

        return WaitForLeader();
    }

    /// <summary>Starts (or restarts, from its disk) member <paramref name="id"/>.</summary>
    public ReplicatedStore Start(ulong id)
    {
        if (Members.ContainsKey(id))
        {
            throw new InvalidOperationException($"Member {id} is already running.");
        }

        var options = Options(id, InitialMembers);
        var transport = new TracingTransport(Network.CreateTransport(id), "m", Record);
        var store = Run(Scheduler.Run(async () => await ReplicatedStore.StartAsync(options, transport)), $"start of member {id}");
        Members[id] = store;
        Record($"m{id} started at applied {store.Status.RaftAppliedIndex} revision {store.Status.Revision}");
        return store;
    }

    /// <summary>Stops member <paramref name="id"/> cleanly.</summary>
    public void Stop(ulong id)
    {
        var store = Members[id];
        Run(Scheduler.Run(async () => await store.DisposeAsync()), $"stop of member {id}");
        Members.Remove(id);
        Record($"m{id} stopped");
    }

    /// <summary>Stops every running member cleanly, in id order.</summary>
    public void StopAll()
    {
        foreach (ulong id in Members.Keys.Order().ToList())
        {
            Stop(id);
        }
    }

    /// <summary>
    /// Crashes member <paramref name="id"/>: its disk fails every call from now on, the member is
    /// disposed (its final sync fails, as the process is gone), and the disk comes back keeping,
    /// dropping or tearing each unsynced write, as a restarted machine finds it.
    /// </summary>
    public void Crash(ulong id)
    {
        var store = Members[id];
        var disk = Disks[id];
        disk.Crash();
        var stopping = Scheduler.Run(async () =>
        {
            try
            {
                await store.DisposeAsync();
            }
            catch (Exception e) when (e is SimulatedCrashException or IOException or Storage.StorageFaultedException or AggregateException)
            {
                // The crashed disk refuses the final sync: that is the point.
            }
        });
        Run(stopping, $"crash of member {id}");
        Members.Remove(id);
        disk.Restart();
        Record($"m{id} crashed");
    }

    /// <summary>Starts <paramref name="operation"/> on member <paramref name="via"/> as a task on the scheduler; its outcome goes into the trace.</summary>
    public Task<T> Start<T>(ulong via, string what, Func<ReplicatedStore, ValueTask<T>> operation, Func<T, string> show)
    {
        var store = Members[via];
        return Scheduler.Run(async () =>
        {
            Record($"invoke {what} on m{via}");
            try
            {
                var result = await operation(store);
                Record($"ok {what} on m{via}: {show(result)}");
                return result;
            }
            catch (Exception e)
            {
                Record($"fail {what} on m{via}: {e.GetType().Name}");
                throw;
            }
        });
    }

    /// <summary>Runs <paramref name="operation"/> on member <paramref name="via"/> to completion (see <see cref="Start{T}"/>).</summary>
    public T Do<T>(ulong via, string what, Func<ReplicatedStore, ValueTask<T>> operation, Func<T, string> show, TimeSpan? limit = null) =>
        Run(Start(via, what, operation, show), what, limit);

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

    /// <summary>Runs every queued task, then (until <paramref name="condition"/> holds) advances the clock one step and again; fails after <paramref name="limit"/> of simulated time.</summary>
    public void RunUntil(Func<bool> condition, string what, TimeSpan? limit = null)
    {
        var deadline = Time.GetUtcNow() + (limit ?? DefaultLimit);
        while (true)
        {
            int ran = Scheduler.RunUntilIdle();
            if (ran > 0)
            {
                RecordStep();
            }

            if (condition())
            {
                return;
            }

            if (Time.GetUtcNow() >= deadline)
            {
                Assert.Fail($"{what}: not done after {limit ?? DefaultLimit} of simulated time (seed {Seed}). Work that escaped the scheduler: {(OffThreadEvents.Count > 0 ? OffThreadEvents[0] : "none")}. Last trace lines:\n{string.Join("\n", _trace.TakeLast(30))}");
            }

            Time.Advance(StepInterval);
        }
    }

    public void RunFor(TimeSpan duration)
    {
        var end = Time.GetUtcNow() + duration;
        RunUntil(() => Time.GetUtcNow() >= end, $"running for {duration}", duration + StepInterval);
    }

    /// <summary>Runs until every running member names the same leader and that member leads; returns it.</summary>
    public ulong WaitForLeader(TimeSpan? limit = null)
    {
        ulong leader = 0;
        RunUntil(
            () =>
            {
                var leaders = Members.Values.Select(m => m.Status.LeaderId).Distinct().ToList();
                leader = leaders.Count == 1 && Members.ContainsKey(leaders[0]) ? leaders[0] : 0;
                return leader != 0 && Members[leader].Node.Status.Raft.SoftState.Role == StateRole.Leader;
            },
            "waiting for a leader",
            limit);
        return leader;
    }

    /// <summary>Runs until every running member has applied at least <paramref name="index"/>.</summary>
    public void WaitForApplied(ulong index, TimeSpan? limit = null) =>
        RunUntil(() => Members.Values.All(m => m.Status.RaftAppliedIndex >= index), $"every member applied {index}", limit);

    public void Record(string line)
    {
        if (Environment.CurrentManagedThreadId != _threadId)
        {
            lock (_offThread)
            {
                _offThread.Add(_offThread.Count == 0 ? line + "\n" + Environment.StackTrace : line);
            }

            return;
        }

        string stamped = $"{(Time.GetUtcNow() - Epoch).TotalMilliseconds.ToString(CultureInfo.InvariantCulture)}ms {line}";
        _trace.Add(stamped);
        _hash.AppendData(Encoding.UTF8.GetBytes(stamped + "\n"));
    }

    /// <summary>After each scheduler run: what every member shows (leader, term, applied index, revision) and the network's counts.</summary>
    private void RecordStep()
    {
        var members = Members.Values.OrderBy(m => m.MemberId).Select(m =>
        {
            try
            {
                var status = m.Status;
                return $"m{m.MemberId}:L{status.LeaderId}/T{status.RaftTerm}/A{status.RaftAppliedIndex}/R{status.Revision}";
            }
            catch (SimulatedCrashException)
            {
                // A member whose disk crashed, on its way down: Status reads the file's size.
                return $"m{m.MemberId}:crashed";
            }
        });
        Record($"step {Scheduler.ExecutedTasks} tasks; {string.Join(" ", members)}; net {Network.DeliveredMessages}d/{Network.DroppedMessages}x/{Network.SnapshotsDelivered}s");
    }

    public void Dispose()
    {
        foreach (var id in Members.Keys.ToList())
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
        _hash.Dispose();
    }

    private sealed class TraceLoggerFactory(string prefix, Action<string> trace) : ILoggerFactory
    {
        public ILogger CreateLogger(string categoryName) => new TraceLogger($"{prefix} {categoryName.Split('.')[^1]}", trace);

        public void AddProvider(ILoggerProvider provider) => throw new NotSupportedException();

        public void Dispose()
        {
        }
    }

    private sealed class TraceLogger(string prefix, Action<string> trace) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            trace($"{prefix} {logLevel}: {formatter(state, exception)}{(exception is null ? string.Empty : $" ({exception.GetType().Name})")}");
    }
}
