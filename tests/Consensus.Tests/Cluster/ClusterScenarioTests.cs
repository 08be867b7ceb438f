using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Cluster;

/// <summary>
/// Whole clusters of RaftNodes (real WAL and snapshotter on fault-injecting disks, in-process
/// network, one thread, simulated time) doing what a user relies on: results from every node,
/// surviving a leader crash, catching up from disk and by snapshot, membership changes under
/// load, leadership transfer, linearizable reads on every node.
/// </summary>
[TestFixture]
public sealed class ClusterScenarioTests
{
    [TestCase(3)]
    [TestCase(5)]
    public void ProposalsFromEveryNodeReturnTheirResultsAndAreAppliedEverywhere(int size)
    {
        using var cluster = new SimulatedCluster(seed: size, size);
        cluster.StartAll();

        var proposals = new List<(ulong Via, Task<ulong> Index)>();
        for (int round = 0; round < 4; round++)
        {
            foreach (ulong id in cluster.InitialVoters)
            {
                proposals.Add((id, cluster.Propose(id, $"n{id}-r{round}")));
            }
        }

        cluster.Run(Task.WhenAll(proposals.Select(p => p.Index)), "every proposal");
        cluster.WaitUntilAppliedEverywhere("n1-r3");
        cluster.RunUntil(() => cluster.RunningIds.All(id => cluster[id].Machine!.History.Count == proposals.Count), "every command applied on every node");

        Assert.That(cluster.Acknowledged, Has.Count.EqualTo(4 * size));
        Assert.That(cluster.CheckHistories(requireAllCaughtUp: true), Is.Empty, $"seed {cluster.Seed}");
    }

    [Test]
    public void AfterTheLeaderCrashesANewOneIsElectedAndKeepsEveryAcknowledgedProposal()
    {
        using var cluster = new SimulatedCluster(seed: 11, size: 3);
        ulong oldLeader = cluster.StartAll();
        for (int i = 0; i < 5; i++)
        {
            cluster.ProposeAndWait(cluster.InitialVoters[i % 3]);
        }

        cluster.Crash(oldLeader);
        ulong newLeader = cluster.WaitForLeader();
        Assert.That(newLeader, Is.Not.EqualTo(oldLeader));
        cluster.ProposeAndWait(newLeader, "after-crash");

        cluster.Start(oldLeader);
        cluster.WaitUntilAppliedEverywhere("after-crash");
        Assert.That(cluster.CheckHistories(requireAllCaughtUp: true), Is.Empty, $"seed {cluster.Seed}");
    }

    [Test]
    public void ANodeRestartedFromItsDiskCatchesUp()
    {
        using var cluster = new SimulatedCluster(seed: 12, size: 3);
        ulong leader = cluster.StartAll();
        ulong follower = cluster.InitialVoters.First(id => id != leader);
        for (int i = 0; i < 10; i++)
        {
            cluster.ProposeAndWait(leader);
        }

        cluster.Stop(follower);
        for (int i = 0; i < 10; i++)
        {
            cluster.ProposeAndWait(leader);
        }

        cluster.Start(follower);
        cluster.ProposeAndWait(leader, "last");
        cluster.WaitUntilAppliedEverywhere("last");

        Assert.That(cluster[follower].Machine!.History, Has.Count.EqualTo(21), "everything, once: the first ten replayed from its own disk, the rest from the leader");
        Assert.That(cluster.CheckHistories(requireAllCaughtUp: true), Is.Empty, $"seed {cluster.Seed}");
    }

    [Test]
    public void ANodeFarBehindIsCaughtUpByASnapshotLargerThanOneChunk()
    {
        const int ChunkSizeBytes = 4096;
        using var cluster = new SimulatedCluster(
            seed: 13,
            size: 3,
            network: new InProcessNetworkOptions { SnapshotChunkSizeBytes = ChunkSizeBytes },
            snapshotPaddingBytes: 10 * ChunkSizeBytes);
        ulong leader = cluster.StartAll();
        ulong laggard = cluster.InitialVoters.First(id => id != leader);
        cluster.Network.Isolate(laggard);

        // Far past a snapshot (every 40 entries) and the retained tail (20): the leader no longer
        // has the entries the laggard needs.
        for (int i = 0; i < 120; i++)
        {
            cluster.ProposeAndWait(leader);
        }

        cluster.Network.Heal();
        cluster.ProposeAndWait(leader, "after-heal");
        cluster.WaitUntilAppliedEverywhere("after-heal");

        Assert.That(cluster[laggard].Machine!.Restores, Is.GreaterThanOrEqualTo(1), "caught up by a snapshot, not by entries");
        Assert.That(cluster.Network.SnapshotsDelivered, Is.GreaterThanOrEqualTo(1));
        Assert.That(cluster.Network.SnapshotChunks, Is.GreaterThan(10), "the snapshot crossed in many chunks");
        Assert.That(cluster.CheckHistories(requireAllCaughtUp: true), Is.Empty, $"seed {cluster.Seed}");
    }

    [Test]
    public void MembershipChangesWhileProposingLoseNothing()
    {
        using var cluster = new SimulatedCluster(seed: 14, size: 3);
        ulong leader = cluster.StartAll();
        var load = new List<Task<ulong>>();
        void MoreLoad()
        {
            foreach (ulong id in cluster.RunningIds)
            {
                load.Add(cluster.Propose(id));
            }
        }

        cluster.Start(4, join: true);
        MoreLoad();
        var learner = cluster.Node(leader).AddLearnerAsync(4).AsTask();
        MoreLoad();
        cluster.Run(learner, "add learner 4");
        MoreLoad();
        var promoted = cluster.Run(cluster.Node(leader).PromoteLearnerAsync(4).AsTask(), "promote 4");
        Assert.That(promoted.Voters, Is.EquivalentTo(new ulong[] { 1, 2, 3, 4 }));

        ulong removed = cluster.InitialVoters.First(id => id != leader);
        MoreLoad();
        var afterRemoval = cluster.Run(cluster.Node(leader).RemoveMemberAsync(removed).AsTask(), $"remove {removed}");
        Assert.That(afterRemoval.Voters, Has.No.Member(removed).And.Member(4UL));
        cluster.Stop(removed);

        cluster.RunUntil(() => load.All(t => t.IsCompleted), "load during the changes");
        ulong last = cluster.WaitForLeader();
        cluster.ProposeAndWait(last, "after-changes");
        cluster.WaitUntilAppliedEverywhere("after-changes");

        Assert.That(load.Count(t => t.IsCompletedSuccessfully), Is.GreaterThan(0));
        Assert.That(cluster.CheckHistories(requireAllCaughtUp: true), Is.Empty, $"seed {cluster.Seed}");
    }

    [Test]
    public void LeadershipTransferMakesTheTargetLeader()
    {
        using var cluster = new SimulatedCluster(seed: 15, size: 3);
        ulong leader = cluster.StartAll();
        cluster.ProposeAndWait(leader);
        ulong target = cluster.InitialVoters.Last(id => id != leader);

        cluster.Run(cluster.Node(leader).TransferLeadershipAsync(target).AsTask(), $"transfer to {target}");

        Assert.That(cluster.WaitForLeader(), Is.EqualTo(target));
        cluster.ProposeAndWait(target, "under-new-leader");
        cluster.WaitUntilAppliedEverywhere("under-new-leader");
        Assert.That(cluster.CheckHistories(requireAllCaughtUp: true), Is.Empty, $"seed {cluster.Seed}");
    }

    [Test]
    public void AReadIndexAfterAnAcknowledgedProposalSeesItOnEveryNode()
    {
        using var cluster = new SimulatedCluster(seed: 16, size: 3);
        ulong leader = cluster.StartAll();

        // Slow the followers' links so that, without the barrier, they would not have applied it yet.
        foreach (ulong id in cluster.InitialVoters.Where(id => id != leader))
        {
            cluster.Network.SetLinkFaults(leader, id, new LinkFaults { Delay = TimeSpan.FromMilliseconds(30) });
        }

        foreach (ulong via in cluster.InitialVoters)
        {
            string command = $"written-via-{via}";
            cluster.ProposeAndWait(via, command);
            foreach (ulong reader in cluster.InitialVoters)
            {
                var node = cluster.Node(reader);
                var machine = cluster[reader].Machine!;
                bool seen = cluster.Run(
                    cluster.Scheduler.Run(async () =>
                    {
                        await node.ReadIndexAsync();
                        return machine.HasApplied(command);
                    }),
                    $"read index on node {reader}");
                Assert.That(seen, Is.True, $"node {reader} read after '{command}' was acknowledged (seed {cluster.Seed})");
            }
        }
    }
}
