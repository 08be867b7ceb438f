using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Tests.Support;
using static EmbeddedRaft.Consensus.Tests.Support.Fixtures;

namespace EmbeddedRaft.Consensus.Tests.Unit;

/// <summary>
/// What a node does with the state its host made durable: restarts from a commit index that lags
/// what was applied or compacted (commit-only hard states need not be synced), and a host that
/// lost state it had synced (the node keeps following and catches up instead of throwing).
/// </summary>
public class DurableStateTests
{
    private static readonly ulong[] s_three = [1, 2, 3];

    /// <summary>
    /// A three-node cluster whose leader (node 1) applied "x" and "y", and the hard state it had
    /// synced before them: its commit index lags what was applied (commit-only writes need no sync).
    /// </summary>
    private static (TestNetwork Net, TestNode Leader, HardState Synced, ulong Applied) LeaderThatAppliedPastItsSyncedCommit()
    {
        var net = TestNetwork.OfSize(3);
        net.Campaign(1);
        var leader = net[1];
        var synced = leader.Storage.InitialState().HardState;
        net.Propose(1, "x");
        net.Propose(1, "y");
        return (net, leader, synced, leader.AppliedIndex);
    }

    // Guards the Raft core review's finding 3: restart with an unsynced commit index.
    [Test]
    public void ANodeRestartsWhenItAppliedEntriesBeyondItsLastSyncedCommitIndex()
    {
        var (net, n1, synced, applied) = LeaderThatAppliedPastItsSyncedCommit();
        Assert.That(synced.Commit, Is.LessThan(applied));

        // Crash: the commit-only hard-state writes (MustSync false) were never synced.
        n1.Storage.SetHardState(synced);
        n1.Restart(keepApplied: true);

        Assert.That(n1.Core.Log.Committed, Is.EqualTo(applied), "applied entries are committed");
        net.Campaign(1);
        net.Propose(1, "z");
        Assert.That(n1.Applied.Select(Text).Where(t => t.Length > 0), Is.EqualTo(new[] { "x", "y", "z" }), "nothing applied twice");
    }

    // Guards the Raft core review's finding 3: restart with an unsynced commit index.
    [Test]
    public void ANodeRestartsAfterCompactingBeyondItsLastSyncedCommitIndex()
    {
        var (net, n1, synced, applied) = LeaderThatAppliedPastItsSyncedCommit();
        n1.Storage.CreateSnapshot(applied, null);
        n1.Storage.Compact(applied);
        n1.Storage.SetHardState(synced);

        n1.Restart(keepApplied: false);

        Assert.That(n1.Core.Log.Committed, Is.EqualTo(applied), "a snapshot covers only committed entries");
        net.Campaign(1);
        net.Propose(1, "z");
        Assert.That(Text(n1.Applied[^1]), Is.EqualTo("z"));
    }

    // Guards the Raft core review's finding 3: restart with an unsynced commit index.
    [Test]
    public void ACommitIndexBeyondTheLogIsStillRefusedOnRestart()
    {
        var storage = MemoryStorage.WithVoters(s_three);
        storage.Append([E(1, 1), E(1, 2)]);
        storage.SetHardState(new HardState(1, 0, 5));
        Assert.That(() => new RawNode(TestNode.DefaultOptions(1), storage), Throws.ArgumentException.With.Message.Contains("commit"));

        storage.SetHardState(new HardState(1, 0, 1));
        Assert.That(
            () => new RawNode(TestNode.Seeded(1) with { AppliedIndex = 3 }, storage),
            Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("AppliedIndex"));
    }

    // Guards the Raft core review's finding 4: snapshots are synced; heartbeats clamp.
    [Test]
    public void AHeartbeatCommittingBeyondTheFollowersLogCommitsUpToItsLastIndex()
    {
        var node = NodeWithLog(1, s_three, [E(1, 1, "a"), E(1, 2, "b"), E(1, 3, "c")], new HardState(1, 0, 1));
        node.Core.BecomeFollower(1, 2);

        node.Step(new Message { Type = MessageType.Heartbeat, From = 2, To = 1, Term = 1, Commit = 99 });

        Assert.That(node.Core.Log.Committed, Is.EqualTo(3UL));
        Assert.That(node.ReadMessages().Single().Type, Is.EqualTo(MessageType.HeartbeatResponse));
    }

    // Guards the Raft core review's finding 4: snapshots are synced; heartbeats clamp.
    [Test]
    public void AFollowerThatLostAnAcknowledgedSnapshotKeepsFollowingAndCatchesUpUnderTheNextLeader()
    {
        // A host that drops a snapshot it acknowledged breaks the contract (MustSync is set);
        // the follower must still not crash, and a new leader repairs it.
        var net = TestNetwork.OfSize(3);
        net.Campaign(1);
        net.Isolate(3);
        for (var i = 0; i < 5; i++)
        {
            net.Propose(1, "p" + i);
        }

        var n1 = net[1];
        n1.Storage.CreateSnapshot(n1.AppliedIndex, null);
        n1.Storage.Compact(n1.AppliedIndex);
        var durableHardState = net[3].Storage.InitialState().HardState;
        var durableLog = net[3].LogEntries();
        net.Recover();
        net.Tick(1);
        Assert.That(net[3].Core.Log.LastIndex(), Is.EqualTo(n1.Core.Log.LastIndex()), "node 3 got the snapshot");

        var storage = MemoryStorage.WithVoters(s_three);
        storage.Append(durableLog.ToArray());
        storage.SetHardState(durableHardState);
        net.Nodes[3] = new TestNode(TestNode.DefaultOptions(3), storage);
        for (var i = 0; i < 20; i++)
        {
            Assert.DoesNotThrow(() => net.Tick(1));
        }

        Assert.That(net[3].Core.Lead, Is.EqualTo(1UL));
        Assert.That(net[3].Core.Log.Committed, Is.EqualTo(net[3].Core.Log.LastIndex()), "the heartbeat commit was clamped");

        net.Campaign(2);
        net.Propose(2, "after");
        Assert.That(Text(net[3].LogEntries()[^1]), Is.EqualTo("after"));
    }
}
