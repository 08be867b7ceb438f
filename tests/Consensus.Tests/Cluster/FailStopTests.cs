using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Consensus.Tests.Cluster;

/// <summary>
/// Fail-stop and clean shutdown in a running cluster: a failed fsync stops the node for good and
/// fails its pending calls with the cause; disposal under load leaves no running task and no open file.
/// </summary>
[TestFixture]
public sealed class FailStopTests
{
    [Test]
    public void AFailedFsyncStopsTheNodeFailsItsPendingCallsAndTheOthersCarryOn()
    {
        using var cluster = new SimulatedCluster(seed: 21, size: 3);
        ulong leader = cluster.StartAll();
        cluster.ProposeAndWait(leader);

        cluster[leader].Disk.FailWhen = operation => operation.Kind == FaultOperationKind.Flush;
        var pending = Enumerable.Range(0, 5).Select(_ => cluster.Propose(leader)).ToList();
        cluster.RunUntil(() => pending.All(t => t.IsCompleted), "the failed leader's proposals");

        foreach (var proposal in pending)
        {
            var stopped = Assert.Throws<NodeStoppedException>(() => proposal.GetAwaiter().GetResult());
            Assert.That(stopped!.Cause, Is.Not.Null, "the cause is the failed fsync");
        }

        var status = cluster.Node(leader).Status;
        Assert.That(status.IsStopped, Is.True);
        Assert.That(status.StopCause, Is.Not.Null);
        Assert.Throws<NodeStoppedException>(() => cluster.Run(cluster.Propose(leader), "a proposal after the stop"));

        // Fail-stop means never again: the rest of the cluster elects a new leader and goes on.
        cluster.Network.Isolate(leader);
        ulong successor = 0;
        cluster.RunUntil(
            () =>
            {
                successor = cluster.InitialVoters.Where(id => id != leader).Select(id => cluster.Node(id).Status.LeaderId).FirstOrDefault(l => l != 0 && l != leader);
                return successor != 0;
            },
            "a new leader among the others");
        cluster.ProposeAndWait(successor, "after-fail-stop");
        Assert.That(cluster.CheckHistories(requireAllCaughtUp: false), Is.Empty);
    }

    [Test]
    public void DisposingEveryNodeUnderLoadLeavesNoRunningTaskAndNoOpenFile()
    {
        using var cluster = new SimulatedCluster(seed: 22, size: 3);
        cluster.StartAll();

        // Slow links keep proposals in flight: replication takes 5 ms a hop.
        cluster.Network.SetAllLinkFaults(new LinkFaults { Delay = TimeSpan.FromMilliseconds(5) });
        var load = new List<Task<ulong>>();
        for (int i = 0; i < 30; i++)
        {
            load.Add(cluster.Propose(cluster.InitialVoters[i % 3]));
        }

        cluster.Scheduler.RunUntilIdle();
        Assert.That(load.Any(t => !t.IsCompleted), Is.True, "some proposals are still in flight at disposal");
        foreach (ulong id in cluster.InitialVoters)
        {
            cluster.Stop(id);
        }

        Assert.That(load.All(t => t.IsCompleted), Is.True, "every pending call completed at disposal");
        foreach (var proposal in load.Where(t => !t.IsCompletedSuccessfully))
        {
            Assert.That(proposal.Exception!.InnerException, Is.InstanceOf<NodeStoppedException>().Or.InstanceOf<ProposalDroppedException>());
        }

        // Nothing left to run now or later: no loop, no timer that would queue work.
        cluster.RunFor(TimeSpan.FromSeconds(2));
        Assert.That(cluster.Scheduler.QueuedTasks, Is.Zero);
        long executed = cluster.Scheduler.ExecutedTasks;
        cluster.RunFor(TimeSpan.FromSeconds(2));
        Assert.That(cluster.Scheduler.ExecutedTasks, Is.EqualTo(executed), "a disposed cluster runs nothing");
        foreach (ulong id in cluster.InitialVoters)
        {
            Assert.That(cluster[id].Disk.OpenFiles, Is.Empty, $"node {id} left files open");
        }
    }
}
