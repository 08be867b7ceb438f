using EmbeddedRaft.Consensus.Membership;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Tests.Support;

namespace EmbeddedRaft.Consensus.Tests.Membership;

/// <summary>
/// Restarts on both sides of a configuration change under the one contract of
/// <see cref="IRaftStorage.InitialState"/>: the storage returns the configuration as of the
/// applied index (what <see cref="RawNode.ApplyConfChange"/> returned, persisted with that
/// index; the snapshot's when nothing was applied since), and the host passes that index as
/// <see cref="RaftOptions.AppliedIndex"/>. Whatever the crash point, the restarted node must end
/// with the configuration a fresh replay of its snapshot and log gives, and the cluster must
/// still elect and commit. Node 2 (a follower) crashes; the change removes node 3.
/// </summary>
public class ConfChangeRestartTests
{
    public enum CrashPoint
    {
        /// <summary>The change's entry is committed and persisted, its Ready taken, but not applied.</summary>
        BeforeTheChangeIsApplied,
        /// <summary>The change was applied and its configuration persisted with its index.</summary>
        AfterTheChangeIsApplied,
    }

    private static readonly ConfState s_before = new([1, 2, 3]);
    private static readonly ConfState s_after = new([1, 2], removed: [3]);

    [Test]
    public void ARestartedNodeHasTheConfigurationAFreshReplayGivesAndTheClusterKeepsWorking(
        [Values] CrashPoint crash,
        [Values] bool snapshotBeforeTheCrash,
        [Values] bool applicationStateLost)
    {
        // Set up: a three-node cluster led by 1; the removal of 3 is proposed and, depending on
        // the crash point, node 2 crashes holding the Ready that hands it out, or after applying it.
        var network = TestNetwork.OfSize(3);
        network.Campaign(1);
        Assert.That(network[1].Core.Role, Is.EqualTo(StateRole.Leader));
        var node = network[2];
        network[1].Node.ProposeConfChange(ConfChange.Remove(3));
        var changeIndex = network[1].Core.Log.LastIndex();
        var sent = network[1].ReadMessages();
        if (crash == CrashPoint.BeforeTheChangeIsApplied)
        {
            DeliverUntilHandedOut(network, sent, node, changeIndex);
            Assert.That(node.AppliedIndex, Is.LessThan(changeIndex), "crashed before applying");
            Assert.That(node.Storage.InitialState().HardState.Commit, Is.GreaterThanOrEqualTo(changeIndex), "the commit reached the disk");
            Assert.That(node.Config, Is.EqualTo(s_before));
        }
        else
        {
            network.Deliver(sent);
            Assert.That(node.AppliedIndex, Is.EqualTo(changeIndex));
            Assert.That(node.Config, Is.EqualTo(s_after));
        }

        if (snapshotBeforeTheCrash)
        {
            // The host snapshots its application state at its applied index, with the
            // configuration as of that index, and drops the entries the snapshot covers.
            node.Storage.CreateSnapshot(node.AppliedIndex, node.Config);
            node.Storage.Compact(node.AppliedIndex);
        }

        // Act: restart from what is durable.
        node.Restart(keepApplied: !applicationStateLost);
        var restartedAt = node.AppliedIndex;
        Assert.That(
            node.Node.GetStatus().Config,
            Is.EqualTo(restartedAt >= changeIndex ? s_after : s_before),
            "right after the restart the node holds the configuration as of its applied index");
        node.ReadMessages();

        // Check: the same configuration as a fresh replay of the snapshot and the log...
        Assert.That(node.AppliedIndex, Is.GreaterThanOrEqualTo(changeIndex), "the change was handed out again and applied");
        Assert.That(node.Config, Is.EqualTo(s_after));
        Assert.That(node.Node.GetStatus().Config, Is.EqualTo(s_after));
        Assert.That(node.Config, Is.EqualTo(FreshReplayConfig(node)));
        Assert.That(node.Storage.InitialState().ConfState, Is.EqualTo(s_after), "and it is what a second restart would start from");

        // ...and the cluster elects (node 2 needs node 1's vote under the new configuration) and commits.
        network.Campaign(2);
        Assert.That(node.Core.Role, Is.EqualTo(StateRole.Leader));
        network.Propose(2, "after restart");
        foreach (var id in new ulong[] { 1, 2 })
        {
            Assert.That(network[id].Applied.Select(Fixtures.Text), Does.Contain("after restart"), $"node {id} applied the proposal");
            Assert.That(network[id].Config, Is.EqualTo(s_after), $"node {id}'s configuration");
        }
    }

    [Test]
    public void WithoutTheAppliedIndexAConfigurationSavedPastTheSnapshotIsRefused()
    {
        var network = TestNetwork.OfSize(3);
        network.Campaign(1);
        network[1].Node.ProposeConfChange(ConfChange.Remove(3));
        network.Deliver(network[1].ReadMessages());
        var node = network[2];
        Assert.That(node.Storage.InitialState().ConfState, Is.EqualTo(s_after));

        // The snapshot (bootstrap) has the old configuration; restarting without saying which
        // index the saved one belongs to would re-apply the removal on top of itself.
        Assert.That(
            () => new RawNode(node.Options, node.Storage),
            Throws.ArgumentException.With.Message.Contains(nameof(RaftOptions.AppliedIndex)));
        Assert.That(() => new RawNode(node.Options with { AppliedIndex = node.AppliedIndex }, node.Storage), Throws.Nothing);
    }

    /// <summary>
    /// Delivers messages (and what they cause) until <paramref name="victim"/> takes a Ready
    /// that hands out the entry at <paramref name="index"/> to apply: that Ready is persisted
    /// and its messages sent, then the node crashes before applying it. Later messages are lost.
    /// </summary>
    private static void DeliverUntilHandedOut(TestNetwork network, IEnumerable<Message> messages, TestNode victim, ulong index)
    {
        var queue = new Queue<Message>(messages);
        for (var guard = 0; queue.TryDequeue(out var m); guard++)
        {
            Assert.That(guard, Is.LessThan(100_000), "the network never quiesced");
            var target = network[m.To];
            target.Step(m);
            if (target != victim)
            {
                foreach (var next in target.ReadMessages())
                {
                    queue.Enqueue(next);
                }

                continue;
            }

            while (victim.Node.HasReady())
            {
                foreach (var next in victim.TakeAndHold())
                {
                    queue.Enqueue(next);
                }

                foreach (var entry in victim.Held!.CommittedEntries.Span)
                {
                    if (entry.Index == index)
                    {
                        return;
                    }
                }

                victim.FinishHeld();
            }
        }

        Assert.Fail($"node {victim.Id} was never handed entry {index} to apply");
    }

    /// <summary>
    /// The configuration a brand-new node reaches from <paramref name="node"/>'s durable snapshot
    /// and log alone, applying every committed entry after the snapshot from scratch.
    /// </summary>
    private static ConfState FreshReplayConfig(TestNode node)
    {
        var snapshot = node.Storage.Snapshot();
        var storage = snapshot.Index == 0 ? MemoryStorage.WithVoters(1, 2, 3) : new MemoryStorage();
        if (snapshot.Index > 0)
        {
            storage.ApplySnapshot(snapshot);
        }

        var first = node.Storage.FirstIndex();
        var last = node.Storage.LastIndex();
        if (first <= last)
        {
            storage.Append(node.Storage.Entries(first, last + 1, ulong.MaxValue).Span);
        }

        storage.SetHardState(node.Storage.InitialState().HardState);
        var replay = new TestNode(TestNode.Seeded(node.Id), storage);
        replay.ReadMessages();
        Assert.That(Math.Max(replay.AppliedIndex, snapshot.Index), Is.EqualTo(node.AppliedIndex), "the replay applied as far as the node");
        return replay.Config;
    }
}
