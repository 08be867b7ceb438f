using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>
/// Real <see cref="RaftNode{TResult}"/>s in one process: each with its own data directory on one
/// fault-injecting in-memory disk, all on one <see cref="InProcessNetwork"/>, ticking every
/// <see cref="TickInterval"/> of real time on the thread pool, each with a <see cref="RecordingStateMachine"/>.
/// Waits go through the nodes' own signals (leader changes, applied indexes), bounded by <see cref="Waits.Limit"/>.
/// </summary>
public sealed class HostCluster : IAsyncDisposable
{
    public static readonly TimeSpan TickInterval = RealTimeRaft.TickInterval;

    private readonly int _seed;
    private readonly Func<RaftNodeOptions, RaftNodeOptions> _configure;
    private readonly Func<RecordingStateMachine> _newMachine;

    /// <param name="seed">Seeds the disk, the network and the nodes' Raft randomness.</param>
    /// <param name="configure">Adjusts every node's options.</param>
    /// <param name="newMachine">The state machine of a node started without one (default: a new <see cref="RecordingStateMachine"/>).</param>
    public HostCluster(int seed, Func<RaftNodeOptions, RaftNodeOptions>? configure = null, Func<RecordingStateMachine>? newMachine = null)
    {
        _seed = seed;
        _configure = configure ?? (o => o);
        _newMachine = newMachine ?? (() => new RecordingStateMachine());
        Disk = new FaultInjectingFileSystem(seed);
        Network = new InProcessNetwork(new InProcessNetworkOptions { Seed = seed });
        TestContext.Out.WriteLine($"HostCluster seed {seed}");
    }

    public FaultInjectingFileSystem Disk { get; }

    public InProcessNetwork Network { get; }

    public Dictionary<ulong, RaftNode<long>> Nodes { get; } = [];

    public Dictionary<ulong, RecordingStateMachine> Machines { get; } = [];

    public RaftNode<long> this[ulong id] => Nodes[id];

    public static string DataDirectory(ulong id) => $"/node{id}";

    /// <summary>Starts a cluster of voters 1..size and waits until one of them leads.</summary>
    public static async Task<HostCluster> StartAsync(int size, int seed, Func<RaftNodeOptions, RaftNodeOptions>? configure = null, Func<RecordingStateMachine>? newMachine = null)
    {
        var cluster = new HostCluster(seed, configure, newMachine);
        var voters = Enumerable.Range(1, size).Select(i => (ulong)i).ToArray();
        foreach (var id in voters)
        {
            await cluster.StartNodeAsync(id, voters);
        }

        await cluster.WaitForLeaderAsync();
        return cluster;
    }

    public RaftNodeOptions Options(ulong id, IReadOnlyList<ulong>? voters) => _configure(RealTimeRaft.NodeOptions(_seed, id) with
    {
        NodeId = id,
        InitialVoters = voters,
        DataDirectory = DataDirectory(id),
        FileSystem = Disk,
    });

    /// <summary>Starts (or restarts) node <paramref name="id"/>; <paramref name="machine"/> null means a new, empty state machine.</summary>
    public async Task<RaftNode<long>> StartNodeAsync(ulong id, IReadOnlyList<ulong>? voters, RecordingStateMachine? machine = null, Func<RaftNodeOptions, RaftNodeOptions>? configure = null)
    {
        machine ??= _newMachine();
        var options = Options(id, voters);
        if (configure is not null)
        {
            options = configure(options);
        }

        var node = await RaftNode<long>.StartAsync(options, machine, Network.CreateTransport(id));
        Nodes[id] = node;
        Machines[id] = machine;
        return node;
    }

    public async Task StopNodeAsync(ulong id)
    {
        await Nodes[id].DisposeAsync();
        Nodes.Remove(id);
    }

    /// <summary>Waits until every running node knows the same leader, and that leader knows it leads; returns its id.</summary>
    public async Task<ulong> WaitForLeaderAsync()
    {
        var deadline = DateTime.UtcNow + Waits.Limit;
        while (DateTime.UtcNow < deadline)
        {
            var leader = await NextKnownLeaderAsync(Nodes.Values.First());
            if (Nodes.TryGetValue(leader, out var leaderNode) && Nodes.Values.All(n => n.Status.LeaderId == leader))
            {
                await NextKnownLeaderAsync(leaderNode);
                if (leaderNode.Status.Raft.SoftState.Role == StateRole.Leader && Nodes.Values.All(n => n.Status.LeaderId == leader))
                {
                    return leader;
                }
            }

            // Not settled yet: wait for the next change anywhere.
            await Task.WhenAny(Nodes.Values.Select(n => NextChangeAsync(n)));
        }

        Assert.Fail($"No leader all nodes agree on within {Waits.Limit}.");
        return 0;
    }

    public ulong LeaderId() => Nodes.Values.Select(n => n.Status).First(s => s.Raft.SoftState.Role == StateRole.Leader).Raft.Id;

    public ulong FollowerId() => Nodes.Keys.First(id => id != LeaderId());

    /// <summary>Waits until every running node has applied at least up to <paramref name="index"/>.</summary>
    public Task WaitForAllAppliedAsync(ulong index) =>
        Task.WhenAll(Nodes.Keys.Select(id => Machines[id].WaitForAppliedAsync(index))).WaitAsync(Waits.Limit);

    public async ValueTask DisposeAsync()
    {
        foreach (var node in Nodes.Values)
        {
            await node.DisposeAsync();
        }

        Nodes.Clear();
        Network.Dispose();
    }

    private static async Task<ulong> NextKnownLeaderAsync(RaftNode<long> node)
    {
        using var cts = new CancellationTokenSource(Waits.Limit);
        await foreach (var change in node.LeaderChanges(cts.Token))
        {
            if (change.LeaderId != 0)
            {
                return change.LeaderId;
            }
        }

        return 0;
    }

    // The next leader change on the node, or a quiet 200 ms (then the caller looks again: the
    // cluster may have settled between its look and this subscription).
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
