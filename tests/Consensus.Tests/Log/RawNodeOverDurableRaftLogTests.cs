using System.Text;
using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Consensus.Tests.Log.LogTestKit;

namespace EmbeddedRaft.Consensus.Tests.Log;

/// <summary>
/// RawNode driven by hand over DurableRaftLog: a single node and a three-node cluster keep every
/// acknowledged command, in order, across clean restarts, crashes of the disk, compaction and a
/// follower caught up by a snapshot streamed from the leader's log.
/// </summary>
public sealed class RawNodeOverDurableRaftLogTests
{
    [Test]
    public async Task ASingleNodeKeepsItsCommandsAcrossCleanAndCrashRestarts()
    {
        var disk = new FaultInjectingFileSystem(1);
        var options = Options(cachedEntryBytes: 500, retainedEntries: 3, segmentSizeBytes: 4096);
        var node = await DurableTestNode.StartAsync(1, [1], disk, options, snapshotEvery: 15);
        var proposed = new List<string>();

        await ElectAsync(node);
        await ProposeAsync(node, proposed, 0, 40);
        Assert.That(Commands(node), Is.EqualTo(proposed));

        await node.StopAsync(crash: false);
        await node.RestartAsync(keepStateMachine: true);
        await ElectAsync(node);
        await ProposeAsync(node, proposed, 40, 30);
        Assert.That(Commands(node), Is.EqualTo(proposed));

        // Every proposal above was acknowledged after a synced save: a crash loses none of them.
        await node.StopAsync(crash: true);
        await node.RestartAsync(keepStateMachine: false);
        await PumpAsync([node]);
        await ElectAsync(node);
        Assert.That(Commands(node), Is.EqualTo(proposed));
        await ProposeAsync(node, proposed, 70, 10);
        Assert.That(Commands(node), Is.EqualTo(proposed));
        Assert.That(node.Log.NewestSnapshot, Is.Not.Null, "the policy took snapshots");
        await node.StopAsync(crash: false);
    }

    [Test]
    public async Task AThreeNodeClusterSurvivesCrashesRestartsAndCatchesUpAFollowerBySnapshot()
    {
        var options = Options(cachedEntryBytes: 800, retainedEntries: 4, segmentSizeBytes: 4096);
        var nodes = new List<DurableTestNode>();
        for (ulong id = 1; id <= 3; id++)
        {
            nodes.Add(await DurableTestNode.StartAsync(id, [1, 2, 3], new FaultInjectingFileSystem((int)id), options, snapshotEvery: 10));
        }

        var proposed = new List<string>();
        await ElectAsync(nodes[0], nodes);
        await ProposeAsync(nodes[1], proposed, 0, 20, nodes); // forwarded by a follower

        // Node 3 crashes and misses enough for the leader to compact past it.
        await nodes[2].StopAsync(crash: true);
        await ProposeAsync(nodes[0], proposed, 20, 40, nodes);
        Assert.That(nodes[0].Log.FirstIndex(), Is.GreaterThan(nodes[2].Log.LastIndex() + 1), "the leader compacted past what node 3 holds");

        await nodes[2].RestartAsync(keepStateMachine: false);
        await PumpAsync(nodes, ticksOf: nodes[0]);
        Assert.That(Commands(nodes[2]), Is.EqualTo(proposed), "node 3 caught up (by snapshot)");
        Assert.That(nodes[2].Log.NewestSnapshot, Is.Not.Null);

        // The leader restarts cleanly; node 2 takes over and everyone keeps going.
        await nodes[0].StopAsync(crash: false);
        await ElectAsync(nodes[1], nodes);
        await ProposeAsync(nodes[2], proposed, 60, 15, nodes);
        await nodes[0].RestartAsync(keepStateMachine: true);
        await PumpAsync(nodes, ticksOf: nodes[1]);
        await ProposeAsync(nodes[0], proposed, 75, 10, nodes);

        foreach (var node in nodes)
        {
            Assert.That(Commands(node), Is.EqualTo(proposed), $"node {node.Id}");
            await node.StopAsync(crash: false);
        }
    }

    private static async Task ElectAsync(DurableTestNode candidate, List<DurableTestNode>? cluster = null)
    {
        candidate.Node.Campaign();
        await PumpAsync(cluster ?? [candidate]);
        Assert.That(candidate.Node.SoftState.Role, Is.EqualTo(StateRole.Leader), $"node {candidate.Id} won its election");
    }

    /// <summary>Proposes commands one by one on <paramref name="via"/>, each acknowledged (applied there) before the next.</summary>
    private static async Task ProposeAsync(DurableTestNode via, List<string> proposed, int from, int count, List<DurableTestNode>? cluster = null)
    {
        for (int i = from; i < from + count; i++)
        {
            string command = $"command-{i}";
            via.Node.Propose(Encoding.UTF8.GetBytes(command));
            await PumpAsync(cluster ?? [via]);
            Assert.That(Commands(via), Does.Contain(command), $"{command} applied on node {via.Id}");
            proposed.Add(command);
        }
    }

    /// <summary>Handles Readies and delivers messages until quiet; down nodes drop what is sent to them. Ticks <paramref name="ticksOf"/> (the leader) a few times so followers that were away are probed.</summary>
    private static async Task PumpAsync(List<DurableTestNode> nodes, DurableTestNode? ticksOf = null)
    {
        var queue = new Queue<(Message Message, DurableTestNode From)>();
        for (int round = 0; round < 10_000; round++)
        {
            foreach (var node in nodes.Where(n => n.IsUp))
            {
                foreach (var message in await node.HandleReadiesAsync())
                {
                    queue.Enqueue((message, node));
                }
            }

            if (queue.Count == 0)
            {
                if (ticksOf is { IsUp: true } && round < 200)
                {
                    ticksOf.Node.Tick();
                    continue;
                }

                return;
            }

            while (queue.TryDequeue(out var item))
            {
                var target = nodes.Single(n => n.Id == item.Message.To);
                if (target.IsUp)
                {
                    await target.DeliverAsync(item.Message, item.From);
                }
            }
        }

        Assert.Fail("The cluster never went quiet.");
    }

    private static List<string> Commands(DurableTestNode node) => node.Applied.Select(c => Encoding.UTF8.GetString(c)).ToList();
}
