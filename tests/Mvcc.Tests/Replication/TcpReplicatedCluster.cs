using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.Consensus.Transport.Tcp;
using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using EmbeddedRaft.TestSupport.Tcp;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>
/// Real <see cref="ReplicatedStore"/> members in one process talking over real
/// <see cref="TcpTransport"/>s on loopback, each member behind its own <see cref="TcpFaultProxy"/>:
/// a member's registered peer URL is its proxy's address, so every byte a member receives passes
/// through its proxy, which can cut, delay or black-hole it. Each member has its own fault-injecting
/// disk (crash one alone) and gets a new transport on a new port when it restarts (the proxy is
/// pointed at it, its URL stays). Snapshots are taken every <see cref="SnapshotEveryEntries"/>
/// entries and the log keeps only <see cref="RetainedEntries"/> below each one, so a follower a
/// little behind catches up from the log and one further behind needs the leader's snapshot; the
/// log's entry cache is small (<see cref="CachedEntryBytes"/>), so a follower's received frames go
/// back to their pool soon after their entries are applied.
/// </summary>
public sealed class TcpReplicatedCluster : IAsyncDisposable
{
    public const ulong ClusterId = 0x71CA;

    /// <summary>Entries applied between two snapshots of a member.</summary>
    public const ulong SnapshotEveryEntries = 60;

    /// <summary>Entries a member's log keeps below its snapshot for followers slightly behind.</summary>
    public const ulong RetainedEntries = 20;

    /// <summary>Committed entry bytes a member's log keeps in memory (the default is 1 MiB).</summary>
    public const long CachedEntryBytes = 64 * 1024;

    private readonly int _seed;
    private readonly Func<RaftNodeOptions, RaftNodeOptions> _configureNode;
    private readonly Dictionary<ulong, FaultInjectingFileSystem> _disks = [];
    private readonly Dictionary<ulong, TcpTransport> _transports = [];
    private readonly Lock _lock = new();
    private readonly Dictionary<ulong, ReplicatedStore> _members = [];
    private long _framesReturnedByStopped;
    private long _framesReusedByStopped;

    private TcpReplicatedCluster(int seed, Func<RaftNodeOptions, RaftNodeOptions>? configureNode)
    {
        _seed = seed;
        _configureNode = configureNode ?? (o => o);
    }

    /// <summary>Each member's proxy, in front of its listener for the whole run.</summary>
    public Dictionary<ulong, TcpFaultProxy> Proxies { get; } = [];

    public IReadOnlyList<MemberInfo> InitialMembers { get; private set; } = [];

    /// <summary>Received frames every member's node (its runs so far included) gave back to its pool: the follower path under test ran.</summary>
    public long FramesReturned => Interlocked.Read(ref _framesReturnedByStopped) + Running.Values.Sum(m => NodeDiagnostics.ReceivedFramesReturned(m.Node));

    /// <summary>Frame arrays rented again after being given back, over every member's runs: the reuse a broken lending rule would corrupt.</summary>
    public long FramesReused => Interlocked.Read(ref _framesReusedByStopped) + Running.Values.Sum(m => NodeDiagnostics.ReceivedFramesReused(m.Node));

    /// <summary>The members running now (a copy: members stop and start under the caller).</summary>
    public IReadOnlyDictionary<ulong, ReplicatedStore> Running
    {
        get { lock (_lock) { return new Dictionary<ulong, ReplicatedStore>(_members); } }
    }

    /// <summary>Starts members 1..<paramref name="size"/> bootstrapped together, each behind its proxy, and waits for a leader.</summary>
    public static async Task<TcpReplicatedCluster> StartAsync(int size, int seed, Func<RaftNodeOptions, RaftNodeOptions>? configureNode = null)
    {
        var cluster = new TcpReplicatedCluster(seed, configureNode);
        var ids = Enumerable.Range(1, size).Select(i => (ulong)i).ToArray();
        foreach (ulong id in ids)
        {
            cluster._disks[id] = new FaultInjectingFileSystem((seed * 1000) + (int)id);
            cluster.CreateTransport(id);
        }

        cluster.InitialMembers = ids.Select(id => new MemberInfo(id, $"m{id}", [$"tcp://{cluster.Proxies[id].Address}"], [])).ToArray();
        foreach (ulong id in ids)
        {
            await cluster.StartMemberAsync(id);
        }

        await cluster.WaitForLeaderAsync();
        return cluster;
    }

    /// <summary>Starts (or restarts) member <paramref name="id"/> from its disk on a new transport, its proxy pointed at it.</summary>
    public async Task<ReplicatedStore> StartMemberAsync(ulong id)
    {
        var transport = _transports.TryGetValue(id, out var existing) ? existing : CreateTransport(id);
        var options = new ReplicatedStoreOptions
        {
            MemberId = id,
            DataDirectory = $"/member{id}",
            InitialMembers = InitialMembers,
            ClusterId = ClusterId,
            FileSystem = _disks[id],
            Raft = _configureNode(ReplicatedCluster.NodeOptions(_seed, id) with
            {
                SnapshotEveryEntries = SnapshotEveryEntries,
                SnapshotEveryLogBytes = 0,

                // A small entry cache: a follower gives a received frame back as soon as its entries are
                // applied and leave the cache, so frames are returned (and reused) early and often.
                Log = ReplicatedCluster.LogOptions with
                {
                    RetainedEntries = RetainedEntries,
                    CachedEntryBytes = CachedEntryBytes,
                },
            }),
        };
        var store = await ReplicatedStore.StartAsync(options, transport).AsTask().OrFailAsync($"member {id} to start", Describe);
        lock (_lock)
        {
            _members[id] = store;
        }

        return store;
    }

    /// <summary>
    /// Stops member <paramref name="id"/> and its transport; with <paramref name="crash"/> its disk
    /// crashes first (every write not flushed may be lost or torn) and comes back as a restarted
    /// machine would find it.
    /// </summary>
    public async Task StopMemberAsync(ulong id, bool crash)
    {
        ReplicatedStore store;
        lock (_lock)
        {
            store = _members[id];
            _members.Remove(id);
        }

        var disk = _disks[id];
        if (crash)
        {
            disk.Crash();
        }

        try
        {
            await store.DisposeAsync().AsTask().OrFailAsync($"member {id} to stop", Describe);
        }
        catch (Exception e) when (crash && e is SimulatedCrashException or IOException or Storage.StorageFaultedException or AggregateException)
        {
            // The crashed disk refuses the final sync: that is the point.
        }

        // Counted once the member has stopped, so frames it gave back while stopping count too.
        Interlocked.Add(ref _framesReturnedByStopped, NodeDiagnostics.ReceivedFramesReturned(store.Node));
        Interlocked.Add(ref _framesReusedByStopped, NodeDiagnostics.ReceivedFramesReused(store.Node));
        await _transports[id].DisposeAsync();
        _transports.Remove(id);
        if (crash)
        {
            disk.Restart();
        }
    }

    /// <summary>The leader every running member agrees on, once they do; fails with <see cref="Describe"/> after <see cref="Waits.Limit"/>.</summary>
    public async Task<ulong> WaitForLeaderAsync()
    {
        var deadline = DateTime.UtcNow + Waits.Limit;
        while (DateTime.UtcNow < deadline)
        {
            var running = Running;
            var leaders = running.Values.Select(m => m.Node.Status.LeaderId).Distinct().ToArray();
            if (leaders is [ulong leader] && leader != 0 && running.TryGetValue(leader, out var l) && l.Node.Status.Raft.SoftState.Role == Consensus.StateRole.Leader)
            {
                return leader;
            }

            await Task.Delay(Waits.PollInterval);
        }

        Assert.Fail($"No leader all running members agree on within {Waits.Limit}.{Environment.NewLine}State then:{Environment.NewLine}{Describe()}");
        return 0;
    }

    /// <summary>
    /// Every member as it is now, one line each, for a failure message: role, term, leader, commit,
    /// applied, snapshot index, revision, why it stopped, and its proxy's snapshot connections.
    /// </summary>
    public string Describe()
    {
        var lines = new List<string>();
        var running = Running;
        foreach (var member in InitialMembers)
        {
            string proxy = Proxies.TryGetValue(member.Id, out var p) ? $"proxy: {p.Connections} connections, {p.SnapshotConnections} snapshot connections ({p.SnapshotCuts} cut)" : "no proxy";
            if (!running.TryGetValue(member.Id, out var store))
            {
                lines.Add($"member {member.Id}: not running; {proxy}");
                continue;
            }

            try
            {
                var node = store.Node.Status;
                lines.Add($"member {member.Id}: {node.Raft.SoftState.Role} term {node.Raft.HardState.Term} leader {node.LeaderId} commit {node.Raft.HardState.Commit} "
                    + $"applied {node.AppliedIndex} snapshot {node.SnapshotIndex} revision {store.Status.Revision} compacted {store.Status.CompactRevision} "
                    + $"frames returned {NodeDiagnostics.ReceivedFramesReturned(store.Node)} (reused {NodeDiagnostics.ReceivedFramesReused(store.Node)}) "
                    + $"stopped {(node.IsStopped ? $"{node.StopCause?.GetType().Name}: {node.StopCause?.Message}" : "no")}; {proxy}");
            }
            catch (Exception e)
            {
                lines.Add($"member {member.Id}: (not described: {e.GetType().Name}: {e.Message}); {proxy}");
            }
        }

        return string.Join(Environment.NewLine, lines);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var (id, store) in Running)
        {
            await store.DisposeAsync().AsTask().OrFailAsync($"member {id} to stop at the cluster's end", Describe);
        }

        lock (_lock)
        {
            _members.Clear();
        }

        foreach (var transport in _transports.Values)
        {
            await transport.DisposeAsync();
        }

        foreach (var proxy in Proxies.Values)
        {
            await proxy.DisposeAsync();
        }
    }

    private TcpTransport CreateTransport(ulong id)
    {
        var transport = new TcpTransport(new TcpTransportOptions
        {
            NodeId = id,
            ClusterId = ClusterId,
            ListenAddress = "127.0.0.1:0",
            ReconnectMinDelay = TimeSpan.FromMilliseconds(20),
            ReconnectMaxDelay = TimeSpan.FromMilliseconds(400),
            HandshakeTimeout = TimeSpan.FromSeconds(5),
            FrameTimeout = TimeSpan.FromSeconds(2),
            WriteTimeout = TimeSpan.FromSeconds(2),
            SnapshotAckTimeout = TimeSpan.FromSeconds(20),
            SnapshotChunkSizeBytes = 4096,
        });
        _transports[id] = transport;
        if (Proxies.TryGetValue(id, out var proxy))
        {
            proxy.Target = transport.LocalEndPoint;
        }
        else
        {
            Proxies[id] = new TcpFaultProxy(transport.LocalEndPoint);
        }

        return transport;
    }
}
