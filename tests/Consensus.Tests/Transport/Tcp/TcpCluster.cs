using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Tests.Host;
using EmbeddedRaft.Consensus.Transport.Tcp;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using EmbeddedRaft.TestSupport.Tcp;

namespace EmbeddedRaft.Consensus.Tests.Transport.Tcp;

/// <summary>
/// Real <see cref="RaftNode{TResult}"/>s talking over <see cref="TcpTransport"/>s on loopback, each
/// listening on an ephemeral port, optionally each behind a <see cref="TcpFaultProxy"/> (peers then
/// reach a node through its proxy). Data directories live on one in-memory disk; waits go through
/// the nodes' own signals, bounded by <see cref="Waits.Limit"/>.
/// </summary>
public sealed class TcpCluster : IAsyncDisposable
{
    public const ulong ClusterId = 0xE12A;

    private readonly int _seed;
    private readonly bool _proxied;
    private readonly Func<ulong, TcpTransportOptions, TcpTransportOptions> _configureTransport;
    private readonly Func<RaftNodeOptions, RaftNodeOptions> _configureNode;
    private readonly Func<RecordingStateMachine> _createMachine;

    private TcpCluster(int seed, bool proxied, Func<ulong, TcpTransportOptions, TcpTransportOptions>? configureTransport, Func<RaftNodeOptions, RaftNodeOptions>? configureNode, Func<RecordingStateMachine>? createMachine)
    {
        _createMachine = createMachine ?? (() => new RecordingStateMachine());
        _seed = seed;
        _proxied = proxied;
        _configureTransport = configureTransport ?? ((_, o) => o);
        _configureNode = configureNode ?? (o => o);
        Disk = new FaultInjectingFileSystem(seed);
        TestContext.Out.WriteLine($"TcpCluster seed {seed}");
    }

    public FaultInjectingFileSystem Disk { get; }

    public Dictionary<ulong, RaftNode<long>> Nodes { get; } = [];

    public Dictionary<ulong, RecordingStateMachine> Machines { get; } = [];

    public Dictionary<ulong, TcpTransport> Transports { get; } = [];

    public Dictionary<ulong, TcpFaultProxy> Proxies { get; } = [];

    public RaftNode<long> this[ulong id] => Nodes[id];

    /// <summary>Starts voters 1..size over TCP and waits for a leader every node agrees on; <paramref name="createMachine"/> makes each new node's state machine (default a <see cref="RecordingStateMachine"/>).</summary>
    public static async Task<TcpCluster> StartAsync(
        int size,
        int seed,
        bool proxied = false,
        Func<ulong, TcpTransportOptions, TcpTransportOptions>? configureTransport = null,
        Func<RaftNodeOptions, RaftNodeOptions>? configureNode = null,
        Func<RecordingStateMachine>? createMachine = null)
    {
        var cluster = new TcpCluster(seed, proxied, configureTransport, configureNode, createMachine);
        var voters = Enumerable.Range(1, size).Select(i => (ulong)i).ToArray();
        foreach (var id in voters)
        {
            cluster.CreateTransport(id);
        }

        foreach (var id in voters)
        {
            foreach (var peer in voters.Where(p => p != id))
            {
                cluster.Transports[id].SetPeerAddress(peer, cluster.AddressOf(peer));
            }
        }

        foreach (var id in voters)
        {
            await cluster.StartNodeAsync(id, voters);
        }

        await cluster.WaitForLeaderAsync();
        return cluster;
    }

    /// <summary>The address peers use to reach <paramref name="id"/>: its proxy's, or its own listener's.</summary>
    public string AddressOf(ulong id) => _proxied ? Proxies[id].Address : Transports[id].LocalEndPoint.ToString();

    public TcpTransportOptions TransportOptions(ulong id) => _configureTransport(id, new TcpTransportOptions
    {
        NodeId = id,
        ClusterId = ClusterId,
        ReconnectMinDelay = TimeSpan.FromMilliseconds(20),
        ReconnectMaxDelay = TimeSpan.FromMilliseconds(400),
        HandshakeTimeout = TimeSpan.FromSeconds(5),
        FrameTimeout = TimeSpan.FromSeconds(2),
        WriteTimeout = TimeSpan.FromSeconds(2),
        SnapshotAckTimeout = TimeSpan.FromSeconds(20),
        SnapshotChunkSizeBytes = 4096,
    });

    /// <summary>Creates (or replaces) node <paramref name="id"/>'s transport on a new ephemeral port, and its proxy when proxied.</summary>
    public TcpTransport CreateTransport(ulong id)
    {
        var transport = new TcpTransport(TransportOptions(id));
        Transports[id] = transport;
        if (_proxied)
        {
            if (Proxies.TryGetValue(id, out var proxy))
            {
                proxy.Target = transport.LocalEndPoint;
            }
            else
            {
                Proxies[id] = new TcpFaultProxy(transport.LocalEndPoint);
            }
        }

        return transport;
    }

    public RaftNodeOptions NodeOptions(ulong id, IReadOnlyList<ulong>? voters) => _configureNode(RealTimeRaft.NodeOptions(_seed, id) with
    {
        NodeId = id,
        InitialVoters = voters,
        DataDirectory = $"/node{id}",
        FileSystem = Disk,
    });

    public async Task<RaftNode<long>> StartNodeAsync(ulong id, IReadOnlyList<ulong>? voters, RecordingStateMachine? machine = null)
    {
        machine ??= _createMachine();
        var node = await RaftNode<long>.StartAsync(NodeOptions(id, voters), machine, Transports[id]);
        Nodes[id] = node;
        Machines[id] = machine;
        return node;
    }

    /// <summary>Stops node <paramref name="id"/> and its transport (its proxy stays).</summary>
    public async Task StopNodeAsync(ulong id)
    {
        await Nodes[id].DisposeAsync();
        Nodes.Remove(id);
        await Transports[id].DisposeAsync();
        Transports.Remove(id);
    }

    public ulong LeaderId() => Nodes.Values.Select(n => n.Status).First(s => s.Raft.SoftState.Role == StateRole.Leader).Raft.Id;

    /// <summary>Proposes <paramref name="command"/> on whichever node leads, retrying through elections (a proposal may time out while leadership moves).</summary>
    public async Task<long> ProposeAsync(string command)
    {
        var deadline = DateTime.UtcNow + Waits.Limit;
        while (true)
        {
            var node = Nodes.Values.FirstOrDefault(n => n.Status.Raft.SoftState.Role == StateRole.Leader) ?? Nodes.Values.First();
            try
            {
                return await node.ProposeAsync(System.Text.Encoding.UTF8.GetBytes(command)).AsTask().WaitAsync(Waits.Limit);
            }
            catch (Exception) when (DateTime.UtcNow < deadline)
            {
                // No leader yet, or leadership moved: ask again (a retried command may apply twice; tests count distinct commands).
                await Task.Yield();
            }
        }
    }

    /// <summary>Waits until every running node knows the same leader, and that leader knows it leads.</summary>
    public async Task<ulong> WaitForLeaderAsync()
    {
        var deadline = DateTime.UtcNow + Waits.Limit;
        while (DateTime.UtcNow < deadline)
        {
            var statuses = Nodes.Values.Select(n => n.Status).ToList();
            var leader = statuses[0].LeaderId;
            if (leader != 0 && statuses.All(s => s.LeaderId == leader) && Nodes.TryGetValue(leader, out var leaderNode) && leaderNode.Status.Raft.SoftState.Role == StateRole.Leader)
            {
                return leader;
            }

            await Task.WhenAny(Nodes.Values.Select(NextChangeAsync));
        }

        Assert.Fail($"No leader all nodes agree on within {Waits.Limit}.");
        return 0;
    }

    public Task WaitForAllAppliedAsync(ulong index) =>
        Task.WhenAll(Nodes.Keys.Select(id => Machines[id].WaitForAppliedAsync(index))).WaitAsync(Waits.Limit);

    public async ValueTask DisposeAsync()
    {
        foreach (var node in Nodes.Values)
        {
            await node.DisposeAsync();
        }

        Nodes.Clear();
        foreach (var transport in Transports.Values)
        {
            await transport.DisposeAsync();
        }

        Transports.Clear();
        foreach (var proxy in Proxies.Values)
        {
            await proxy.DisposeAsync();
        }

        Proxies.Clear();
    }

    // The next leader change on the node, or a quiet 200 ms (the caller then looks again).
    private static async Task NextChangeAsync(RaftNode<long> node)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        var first = true;
        try
        {
            await foreach (var _ in node.LeaderChanges(cts.Token))
            {
                if (!first)
                {
                    return;
                }

                first = false;
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
