using System.Text;
using EmbeddedRaft.Consensus;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>
/// Real <see cref="ReplicatedStore"/> members in one process: each with its own fault-injecting
/// in-memory disk (so one member can crash alone), all on one <see cref="InProcessNetwork"/>,
/// ticking every <see cref="TickInterval"/> of real time. Waits go through the members' own
/// signals (leader changes, applied indexes), bounded by <see cref="Waits.Limit"/>; one that runs
/// out fails with <see cref="Describe"/>'s picture of every member at that moment.
/// </summary>
public sealed class ReplicatedCluster : IAsyncDisposable
{
    public static readonly TimeSpan TickInterval = RealTimeRaft.TickInterval;

    // The leader subscriptions end a little after Waits.Limit: the bounded wait on them fails first, with the picture.
    private static readonly TimeSpan SubscriptionLimit = Waits.Limit + TimeSpan.FromSeconds(5);

    private readonly int _seed;
    private readonly Func<ReplicatedStoreOptions, ReplicatedStoreOptions> _configure;

    private ReplicatedCluster(int seed, Func<ReplicatedStoreOptions, ReplicatedStoreOptions>? configure)
    {
        _seed = seed;
        _configure = configure ?? (o => o);
        Network = new InProcessNetwork(new InProcessNetworkOptions { Seed = seed });
        TestContext.Out.WriteLine($"ReplicatedCluster seed {seed}");
    }

    public InProcessNetwork Network { get; }

    public Dictionary<ulong, FaultInjectingFileSystem> Disks { get; } = [];

    public Dictionary<ulong, ReplicatedStore> Members { get; } = [];

    public IReadOnlyList<MemberInfo> InitialMembers { get; private set; } = [];

    public ReplicatedStore this[ulong id] => Members[id];

    public static MemberInfo Member(ulong id, bool learner = false) =>
        new(id, $"m{id}", [$"tcp://127.0.0.1:{2380 + (int)id}"], [$"http://127.0.0.1:{2379 + (10 * (int)id)}"], learner);

    /// <summary>
    /// A configuration for <see cref="StartAsync"/>: every member snapshots every 20 entries and
    /// compacts its log up to each snapshot (no entries retained for slow followers), so a short
    /// partition is enough for a member to need the leader's snapshot.
    /// </summary>
    public static ReplicatedStoreOptions SnapshotOften(ReplicatedStoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options with { Raft = options.Raft with { SnapshotEveryEntries = 20, SnapshotEveryLogBytes = 0, Log = new DurableRaftLogOptions { RetainedEntries = 0 } } };
    }

    /// <summary>Starts members 1..size bootstrapped together and waits until they agree on a leader.</summary>
    public static async Task<ReplicatedCluster> StartAsync(int size, int seed, Func<ReplicatedStoreOptions, ReplicatedStoreOptions>? configure = null)
    {
        var cluster = new ReplicatedCluster(seed, configure);
        cluster.InitialMembers = Enumerable.Range(1, size).Select(i => Member((ulong)i)).ToArray();
        foreach (var member in cluster.InitialMembers)
        {
            await cluster.StartMemberAsync(member.Id, cluster.InitialMembers);
        }

        await cluster.WaitForLeaderAsync();
        return cluster;
    }

    public ReplicatedStoreOptions Options(ulong id, IReadOnlyList<MemberInfo>? initial) => _configure(new ReplicatedStoreOptions
    {
        MemberId = id,
        DataDirectory = $"/member{id}",
        InitialMembers = initial,
        FileSystem = Disk(id),
        Raft = NodeOptions(_seed, id),
    });

    /// <summary>
    /// The Raft host options of member <paramref name="id"/> in the test clusters (this one and
    /// <see cref="TcpReplicatedCluster"/>): <see cref="RealTimeRaft.NodeOptions"/>'s timing with
    /// <see cref="LogOptions"/> (small segments: the in-memory disk reads a whole preallocated segment at open).
    /// </summary>
    public static RaftNodeOptions NodeOptions(int seed, ulong id) => RealTimeRaft.NodeOptions(seed, id) with { Log = LogOptions };

    /// <summary>The durable log's options in <see cref="NodeOptions"/>: 1 MiB WAL segments.</summary>
    public static DurableRaftLogOptions LogOptions { get; } = DurableRaftLogOptions.Default with { Wal = Storage.Wal.WalOptions.Default with { SegmentSizeBytes = 1024 * 1024 } };

    public FaultInjectingFileSystem Disk(ulong id)
    {
        if (!Disks.TryGetValue(id, out var disk))
        {
            disk = new FaultInjectingFileSystem((_seed * 1000) + (int)id);
            Disks[id] = disk;
        }

        return disk;
    }

    /// <summary>Starts (or restarts) member <paramref name="id"/> from its disk.</summary>
    public async Task<ReplicatedStore> StartMemberAsync(ulong id, IReadOnlyList<MemberInfo>? initial, Func<ReplicatedStoreOptions, ReplicatedStoreOptions>? configure = null)
    {
        var options = Options(id, initial);
        if (configure is not null)
        {
            options = configure(options);
        }

        var started = System.Diagnostics.Stopwatch.StartNew();
        var store = await ReplicatedStore.StartAsync(options, Network.CreateTransport(id)).AsTask().OrFailAsync($"member {id} to start", Describe);
        TestContext.Out.WriteLine($"member {id} started in {started.ElapsedMilliseconds} ms");
        Members[id] = store;
        return store;
    }

    public async Task StopMemberAsync(ulong id)
    {
        var stopping = System.Diagnostics.Stopwatch.StartNew();
        await Members[id].DisposeAsync().AsTask().OrFailAsync($"member {id} to stop", Describe);
        TestContext.Out.WriteLine($"member {id} stopped in {stopping.ElapsedMilliseconds} ms");
        Members.Remove(id);
    }

    /// <summary>
    /// Crashes member <paramref name="id"/>'s disk (every write not flushed may be lost or torn),
    /// stops the member, and brings the disk back as a restarted machine would find it.
    /// </summary>
    public async Task CrashMemberAsync(ulong id)
    {
        var disk = Disks[id];
        disk.Crash();
        try
        {
            await Members[id].DisposeAsync().AsTask().OrFailAsync($"crashed member {id} to stop", Describe);
        }
        catch (Exception e) when (e is SimulatedCrashException or IOException or Storage.StorageFaultedException or AggregateException)
        {
            // The crashed disk refuses the final sync: that is the point.
        }

        Members.Remove(id);
        disk.Restart();
    }

    /// <summary>Waits until every running member reports the same leader, one of them; returns its id.</summary>
    public async Task<ulong> WaitForLeaderAsync()
    {
        var deadline = DateTime.UtcNow + Waits.Limit;
        while (DateTime.UtcNow < deadline)
        {
            var members = Members.Values.ToArray();
            var leaders = await Task.WhenAll(members.Select(KnownLeaderAsync)).OrFailAsync("every member to know a leader", Describe);
            if (leaders.Distinct().Count() == 1 && Members.ContainsKey(leaders[0]))
            {
                return leaders[0];
            }

            // Not settled yet: wait for the next change anywhere.
            await Task.WhenAny(members.Select((m, i) => NextChangeAsync(m, leaders[i]))).OrFailAsync($"a member to see another leader than {string.Join(", ", leaders)}", Describe);
        }

        Assert.Fail($"No leader all members agree on within {Waits.Limit}.{Environment.NewLine}State then:{Environment.NewLine}{Describe()}");
        return 0;
    }

    public ulong LeaderId() => Members.Values.Select(m => m.Status.LeaderId).First(l => l != 0);

    public IEnumerable<ulong> FollowerIds()
    {
        ulong leader = LeaderId();
        return Members.Keys.Where(id => id != leader).ToArray();
    }

    /// <summary>Waits until every running member has applied at least up to <paramref name="index"/>.</summary>
    public async Task WaitForAppliedAsync(ulong index)
    {
        var deadline = DateTime.UtcNow + Waits.Limit;
        while (Members.Values.Any(m => m.Status.RaftAppliedIndex < index))
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Not every member applied index {index} within {Waits.Limit}.{Environment.NewLine}State then:{Environment.NewLine}{Describe()}");
            }

            // Every member applies what the leader committed: a linearizable read on each returns once it has.
            await Task.WhenAll(Members.Values.Select(m => m.RangeAsync(new RangeRequest { Key = Key("-") }).AsTask())).OrFailAsync($"a linearizable read on every member (for index {index})", Describe);
        }
    }

    /// <summary>
    /// Every member as it is now, one line each, for a failure message: role, term, vote, leader,
    /// commit, applied, persisted, revision, why it stopped, its disk (crashed, a fault armed), and
    /// what its node waits on (<see cref="RaftNode{TResult}.DescribeWaits"/>: pipelines, waiting
    /// proposals); members of <see cref="InitialMembers"/> not running are named as such.
    /// </summary>
    public string Describe()
    {
        var lines = new List<string>();
        var ids = InitialMembers.Select(m => m.Id).Union(Members.Keys).Order();
        foreach (ulong id in ids)
        {
            string disk = Disks.TryGetValue(id, out var d) ? $"disk{(d.IsCrashed ? " crashed" : string.Empty)}{(d.FailWhen is not null ? ", a fault armed" : string.Empty)}" : "no disk";
            if (!Members.TryGetValue(id, out var member))
            {
                lines.Add($"member {id}: not running; {disk}");
                continue;
            }

            try
            {
                var node = member.Node.Status;
                var raft = node.Raft;
                lines.Add($"member {id}: {raft.SoftState.Role} term {raft.HardState.Term} vote {raft.HardState.Vote} leader {raft.SoftState.Lead} "
                    + $"commit {raft.HardState.Commit} applied {node.AppliedIndex} persisted {node.PersistedIndex} revision {member.Mvcc.Revision} "
                    + $"stopped {(node.IsStopped ? node.StopCause?.GetType().Name ?? "(disposed)" : "no")}; {disk}; {NodeDiagnostics.DescribeWaits(member.Node)}");
            }
            catch (Exception e)
            {
                lines.Add($"member {id}: (not described: {e.GetType().Name}: {e.Message}); {disk}");
            }
        }

        return string.Join(Environment.NewLine, lines);
    }

    public static byte[] Key(string text) => Encoding.UTF8.GetBytes(text);

    public static string Text(ReadOnlyMemory<byte> bytes) => Encoding.UTF8.GetString(bytes.Span);

    public async ValueTask DisposeAsync()
    {
        foreach (var (id, member) in Members)
        {
            await member.DisposeAsync().AsTask().OrFailAsync($"member {id} to stop at the cluster's end", Describe);
        }

        Members.Clear();
        Network.Dispose();
    }

    private static async Task<ulong> KnownLeaderAsync(ReplicatedStore member)
    {
        using var cts = new CancellationTokenSource(SubscriptionLimit);
        await foreach (var change in member.LeaderChanges(cts.Token))
        {
            if (change.LeaderId != 0)
            {
                return change.LeaderId;
            }
        }

        return 0;
    }

    private static async Task NextChangeAsync(ReplicatedStore member, ulong seen)
    {
        using var cts = new CancellationTokenSource(SubscriptionLimit);
        await foreach (var change in member.LeaderChanges(cts.Token))
        {
            if (change.LeaderId != seen && change.LeaderId != 0)
            {
                return;
            }
        }
    }
}
