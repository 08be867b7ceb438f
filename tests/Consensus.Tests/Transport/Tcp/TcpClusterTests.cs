using System.Text;
using EmbeddedRaft.Consensus.Transport.Tcp;
using EmbeddedRaft.TestSupport;
using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Consensus.Tests.Transport.Tcp;

/// <summary>
/// A RaftNode cluster over <see cref="TcpTransport"/> on loopback: proposals and linearizable
/// reads, connections cut, delayed and black-holed mid-stream by a proxy, a node restarted on a new
/// port, and a snapshot transfer cut halfway and retried.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public class TcpClusterTests
{
    [Test]
    public async Task AThreeNodeClusterOverTcpCommitsProposalsAndServesLinearizableReadsOnEveryNode()
    {
        // Each transport's log, so that a bad frame or refused handshake among friends (seen once under
        // load, session 10) says what it was.
        var logs = new Dictionary<ulong, RecordingLogger> { [1] = new(), [2] = new(), [3] = new() };
        await using var cluster = await TcpCluster.StartAsync(3, seed: 1401, configureTransport: (id, o) => o with { Logger = logs[id] });
        var leader = cluster[cluster.LeaderId()];

        // Counted from here: while the cluster starts, its transports learn their peers' addresses
        // one node after another, and a transport that connects to a peer not yet told of it is
        // rightly refused ("not a member of this node's peer list", seen once in CI, session 10).
        var troubleAtStart = cluster.Transports.ToDictionary(t => t.Key, t => t.Value.Metrics.FrameErrors + t.Value.Metrics.HandshakeFailures);
        var warningsAtStart = cluster.Transports.Keys.ToDictionary(id => id, id => logs[id].Entries.Count);

        // Many in flight at once: batched into frames of many messages.
        var proposals = Enumerable.Range(0, 200).Select(i => leader.ProposeAsync(Encoding.UTF8.GetBytes($"c{i}")).AsTask()).ToList();
        var results = await Task.WhenAll(proposals).WaitAsync(Waits.Limit);

        Assert.That(results.Order(), Is.EqualTo(Enumerable.Range(1, 200).Select(i => (long)i)), "each proposal applied once, in some order");
        foreach (var (id, node) in cluster.Nodes)
        {
            await node.ReadIndexAsync().AsTask().WaitAsync(Waits.Limit);
            Assert.That(cluster.Machines[id].Commands, Is.SupersetOf(Enumerable.Range(0, 200).Select(i => $"c{i}")), $"node {id} after its read barrier");
        }

        foreach (var (id, transport) in cluster.Transports)
        {
            Assert.That(transport.Metrics.MessagesSent, Is.GreaterThan(0), $"node {id} sent");
            Assert.That(transport.Metrics.MessagesReceived, Is.GreaterThan(0), $"node {id} received");
            Assert.That(
                transport.Metrics.FrameErrors + transport.Metrics.HandshakeFailures - troubleAtStart[id],
                Is.Zero,
                $"node {id}: no bad frames or refused handshakes among friends; its warnings since the start: {string.Join(" | ", logs[id].Entries.Skip(warningsAtStart[id]).Where(e => e.Level >= LogLevel.Warning).Select(e => $"{e.Message} {e.Exception?.Message}"))}");
        }
    }

    [Test]
    public async Task ConnectionsCutDelayedAndBlackHoledMidStreamLoseNoCommittedCommand()
    {
        await using var cluster = await TcpCluster.StartAsync(3, seed: 1402, proxied: true);
        var committed = new List<string>();
        async Task ProposeSome(string phase, int count)
        {
            for (int i = 0; i < count; i++)
            {
                string command = $"{phase}-{i}";
                await cluster.ProposeAsync(command);
                committed.Add(command);
            }
        }

        await ProposeSome("calm", 10);

        // Cut: every connection reset mid-stream, three times over, while proposals flow.
        for (int round = 0; round < 3; round++)
        {
            foreach (var proxy in cluster.Proxies.Values)
            {
                proxy.CutAll();
            }

            await ProposeSome($"cut{round}", 10);
        }

        Assert.That(cluster.Transports.Values.Sum(t => t.Metrics.Reconnects), Is.GreaterThan(0), "senders reconnected after the cuts");

        // Delay: every piece toward one follower waits 20 ms.
        ulong follower = cluster.Nodes.Keys.First(id => id != cluster.LeaderId());
        cluster.Proxies[follower].Delay = TimeSpan.FromMilliseconds(20);
        await ProposeSome("delayed", 10);
        cluster.Proxies[follower].Delay = TimeSpan.Zero;

        // Black hole: everything toward one follower vanishes, its connections stay open.
        cluster.Proxies[follower].BlackHole(true);
        await ProposeSome("blackholed-follower", 10);
        cluster.Proxies[follower].BlackHole(false);

        // Black hole toward the leader: it hears nobody, so the others elect a new one.
        ulong oldLeader = cluster.LeaderId();
        cluster.Proxies[oldLeader].BlackHole(true);
        await ProposeSome("blackholed-leader", 10);
        cluster.Proxies[oldLeader].BlackHole(false);

        long last = await cluster.ProposeAsync("final");
        committed.Add("final");
        foreach (var (id, node) in cluster.Nodes)
        {
            await node.ReadIndexAsync().AsTask().WaitAsync(Waits.Limit);
            Assert.That(cluster.Machines[id].Commands, Is.SupersetOf(committed), $"node {id} has every acknowledged command after the faults healed");
        }

        Assert.That(last, Is.GreaterThanOrEqualTo(committed.Count), "commands applied (retries may apply a command twice)");
    }

    [Test]
    public async Task ANodeRestartedOnANewPortIsReachedAgainOnceItsPeersLearnTheAddress()
    {
        await using var cluster = await TcpCluster.StartAsync(3, seed: 1403);
        for (int i = 0; i < 5; i++)
        {
            await cluster.ProposeAsync($"before-{i}");
        }

        ulong moved = cluster.Nodes.Keys.First(id => id != cluster.LeaderId());
        string oldAddress = cluster.AddressOf(moved);
        var machine = cluster.Machines[moved];
        await cluster.StopNodeAsync(moved);
        for (int i = 0; i < 5; i++)
        {
            await cluster.ProposeAsync($"while-away-{i}");
        }

        var transport = cluster.CreateTransport(moved);
        TestContext.Out.WriteLine($"node {moved} moved from {oldAddress} to {transport.LocalEndPoint}");
        foreach (var other in cluster.Nodes.Keys)
        {
            transport.SetPeerAddress(other, cluster.AddressOf(other));
            cluster.Transports[other].SetPeerAddress(moved, transport.LocalEndPoint.ToString());
        }

        var node = await cluster.StartNodeAsync(moved, voters: null, machine);
        await cluster.ProposeAsync("after");
        await node.ReadIndexAsync().AsTask().WaitAsync(Waits.Limit);

        Assert.That(cluster.Machines[moved].Commands, Is.SupersetOf(new[] { "before-0", "while-away-4", "after" }));
    }

    [Test]
    public async Task ASnapshotTransferCutHalfwayIsReportedFailedAndRetriedToCompletion()
    {
        await using var cluster = await TcpCluster.StartAsync(3, seed: 1404, proxied: true, configureNode: o => o with { SnapshotEveryEntries = 50 });
        string padding = new('x', 200);
        for (int i = 0; i < 300; i++)
        {
            await cluster.ProposeAsync($"early-{i}-{padding}");
        }

        // Node 4 joins empty: the leader's log is compacted, so it is caught up by a snapshot of
        // about 60 KB, whose first transfer the proxy cuts after 20 KB.
        var transport = cluster.CreateTransport(4);
        foreach (var other in cluster.Nodes.Keys)
        {
            transport.SetPeerAddress(other, cluster.AddressOf(other));
            cluster.Transports[other].SetPeerAddress(4, cluster.AddressOf(4));
        }

        cluster.Proxies[4].CutNextSnapshotAfterBytes(20_000);
        var joiner = await cluster.StartNodeAsync(4, voters: null);
        var leader = cluster[cluster.LeaderId()];
        await leader.AddLearnerAsync(4).AsTask().WaitAsync(Waits.Limit);
        await cluster.ProposeAsync("after-join");
        await joiner.ReadIndexAsync().AsTask().WaitAsync(Waits.Limit);

        Assert.That(cluster.Proxies[4].SnapshotCuts, Is.EqualTo(1), "the first snapshot transfer was cut");
        Assert.That(cluster.Transports.Values.Sum(t => t.Metrics.SnapshotsFailed), Is.GreaterThanOrEqualTo(1), "the sender saw the cut transfer fail");
        Assert.That(cluster.Transports[4].Metrics.SnapshotsReceived, Is.GreaterThanOrEqualTo(1), "a later transfer completed");
        Assert.That(cluster.Machines[4].Restores, Is.EqualTo(1), "the joiner restored the one snapshot that arrived whole");
        Assert.That(cluster.Machines[4].Commands, Does.Contain($"early-0-{padding}").And.Contain($"early-299-{padding}").And.Contain("after-join"));
    }
}
