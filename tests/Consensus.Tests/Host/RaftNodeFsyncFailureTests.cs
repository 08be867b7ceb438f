using System.Text;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Storage;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>
/// The write pipeline when the disk misbehaves, with one Ready in flight and with several. An
/// fsync that fails while Readies are in flight: every write after it and everything waiting on one
/// fails with it, nothing that was not durable is applied or acknowledged, the node stops for good
/// naming the failure, and a restart on the healed disk recovers the durable prefix exactly (and
/// nothing the node vouched for beyond it). An fsync that never returns: applies of the entries it
/// holds (and later ones) wait, the loop does not (ticks, heartbeats, commits through the others).
/// </summary>
public class RaftNodeFsyncFailureTests
{
    [TestCase(1)]
    [TestCase(RaftNodeOptions.DefaultMaxReadiesInFlight)]
    public async Task AnFsyncFailingWithReadiesInFlightFailsEveryLaterWaiterAppliesNothingNotDurableAndARestartRecoversTheDurablePrefix(int readiesInFlight)
    {
        const int Later = 6;
        await using var run = await PipelineCluster.StartAsync(seed: 1601 + readiesInFlight, readiesInFlight);
        var (leader, follower) = (run.Cluster.LeaderId(), run.Cluster.FollowerId());
        var node = run.Cluster[leader];
        var durableBefore = node.Status.PersistedIndex;
        var appliedBefore = run.Cluster.Machines[leader].Commands;
        using var flush = run.HoldFlushesOf(leader);

        // The first write's fsync hangs; later proposals are appended, replicated and committed by
        // the followers meanwhile, and written by the leader behind it (with depth > 1 a second
        // Ready is written and waits for the next fsync), their applies waiting on those writes.
        var proposals = new List<Task<long>> { node.ProposeAsync(Encoding.UTF8.GetBytes("doomed-0")).AsTask() };
        await flush.Entered.WaitAsync(Waits.Limit);
        for (var i = 1; i <= Later; i++)
        {
            proposals.Add(node.ProposeAsync(Encoding.UTF8.GetBytes($"doomed-{i}")).AsTask());
            await run.Cluster.Machines[follower].WaitForAppliedAsync(await run.WaitForIndexOfAsync(leader, $"doomed-{i}")).WaitAsync(Waits.Limit);
        }

        var read = node.ReadIndexAsync().AsTask();
        var firstDoomed = run.IndexOf(leader, "doomed-0");
        Assert.That(firstDoomed, Is.EqualTo(durableBefore + 1), "the held write starts right after what was durable");
        Assert.That(proposals.Any(p => p.IsCompleted), Is.False, "a proposal returned while the leader's fsync of it hung");

        // The held fsync fails.
        run.Disk(leader).FailWhen = op => op.Kind == FaultOperationKind.Flush;
        flush.Release();

        foreach (var proposal in proposals)
        {
            var error = Assert.ThrowsAsync<NodeStoppedException>(async () => await proposal.WaitAsync(Waits.Limit));
            AssertNamesTheFailedFlush(error!.Cause);
        }

        AssertNamesTheFailedFlush(Assert.ThrowsAsync<NodeStoppedException>(async () => await read.WaitAsync(Waits.Limit))!.Cause);
        var status = node.Status;
        Assert.That(status.IsStopped, Is.True);
        AssertNamesTheFailedFlush(status.StopCause);
        Assert.That(status.PersistedIndex, Is.EqualTo(durableBefore), "a write reported durable although its fsync failed");
        Assert.That(run.Cluster.Machines[leader].Commands, Is.EqualTo(appliedBefore), "the stopped node applied entries it never held durably");
        Assert.ThrowsAsync<NodeStoppedException>(async () => await node.ProposeAsync(Encoding.UTF8.GetBytes("after-stop")));

        // Power loss on the failed node's machine, then a healed disk: its log holds the durable
        // prefix exactly as the cluster committed it; what lies beyond (written, never synced) may or
        // may not have survived, and is the cluster's too where it did (the node vouched for none of it).
        await run.CrashAsync(leader);
        var committed = run.Cluster.Machines[follower].Commands;
        var recovered = await run.ReadLogAsync(leader);
        var recoveredCommands = recovered.Values.Where(c => c.Length > 0).ToList();
        Assert.That(recovered.Keys.Max(), Is.GreaterThanOrEqualTo(durableBefore), "the restart lost durable entries");
        Assert.That(recoveredCommands.Take(appliedBefore.Count), Is.EqualTo(appliedBefore), "the durable prefix came back changed");
        Assert.That(recoveredCommands, Is.EqualTo(committed.Take(recoveredCommands.Count)), "the recovered log holds what the cluster never committed");
        TestContext.Out.WriteLine($"durable up to {durableBefore}; recovered up to {recovered.Keys.Max()} after the crash");

        // Back in the cluster from that disk: it applies exactly the cluster's history.
        var machine = new RecordingStateMachine();
        await run.StartNodeAsync(leader, machine);
        var newLeader = await run.Cluster.WaitForLeaderAsync();
        await run.Cluster[newLeader].ProposeAsync(Encoding.UTF8.GetBytes("after-restart")).AsTask().WaitAsync(Waits.Limit);
        await run.Cluster.WaitForAllAppliedAsync(run.Cluster.Machines[newLeader].AppliedIndex);
        Assert.That(machine.Commands, Is.EqualTo(run.Cluster.Machines[follower].Commands));
        Assert.That(machine.Commands, Does.Contain("after-restart"));
    }

    [TestCase(1)]
    [TestCase(RaftNodeOptions.DefaultMaxReadiesInFlight)]
    public async Task ALeaderWhoseFsyncNeverReturnsKeepsTickingAndLeadingButAppliesNothingBehindIt(int readiesInFlight)
    {
        const int Later = 4;
        await using var run = await PipelineCluster.StartAsync(seed: 1701 + readiesInFlight, readiesInFlight);
        var leader = run.Cluster.LeaderId();
        var followers = run.Cluster.Nodes.Keys.Where(id => id != leader).ToList();
        var node = run.Cluster[leader];
        var term = node.Status.Raft.HardState.Term;
        using var flush = run.HoldFlushesOf(leader);

        var proposals = new List<Task<long>> { node.ProposeAsync(Encoding.UTF8.GetBytes("held-0")).AsTask() };
        await flush.Entered.WaitAsync(Waits.Limit);
        var heldIndex = run.IndexOf(leader, "held-0");

        // The loop goes on: later proposals are replicated and committed through the followers, and
        // the leader keeps ticking (heartbeats to each follower for three election timeouts).
        for (var i = 1; i <= Later; i++)
        {
            proposals.Add(node.ProposeAsync(Encoding.UTF8.GetBytes($"held-{i}")).AsTask());
        }

        var lastIndex = heldIndex + Later;
        await Task.WhenAll(followers.Select(f => run.Cluster.Machines[f].WaitForAppliedAsync(lastIndex))).WaitAsync(Waits.Limit);
        var heartbeats = 3 * run.Cluster.Options(leader, null).Raft.ElectionTimeoutTicks / run.Cluster.Options(leader, null).Raft.HeartbeatTimeoutTicks;
        await Task.WhenAll(followers.Select(f => run.Sent(leader).WaitForCountAsync(m => m.Type == MessageType.Heartbeat && m.To == f, heartbeats, countSentBefore: false)));

        Assert.That(node.Status.Raft.SoftState.Role, Is.EqualTo(StateRole.Leader), "the leader lost its leadership while its fsync hung");
        Assert.That(run.Cluster.Nodes.Values.Select(n => n.Status.Raft.HardState.Term), Is.All.EqualTo(term), "an election ran: the leader's heartbeats stopped");
        Assert.That(run.Cluster.Machines[leader].AppliedIndex, Is.LessThan(heldIndex), "the leader applied an entry behind the hung fsync");
        Assert.That(proposals.Any(p => p.IsCompleted), Is.False, "a proposal returned before the leader held it durably");

        flush.Release();
        var results = await Task.WhenAll(proposals).WaitAsync(Waits.Limit);
        Assert.That(results, Is.Ordered.Ascending, "the held proposals applied in the order proposed");
        Assert.That(run.Cluster.Machines[leader].AppliedIndex, Is.GreaterThanOrEqualTo(lastIndex));
    }

    [TestCase(1)]
    [TestCase(RaftNodeOptions.DefaultMaxReadiesInFlight)]
    public async Task AFollowerWhoseFsyncNeverReturnsKeepsAnsweringHeartbeatsButAcknowledgesAndAppliesNothingBehindIt(int readiesInFlight)
    {
        await using var run = await PipelineCluster.StartAsync(seed: 1801 + readiesInFlight, readiesInFlight);
        var (leader, follower) = (run.Cluster.LeaderId(), run.Cluster.FollowerId());
        var term = run.Cluster[leader].Status.Raft.HardState.Term;
        using var flush = run.HoldFlushesOf(follower);

        await run.Cluster[leader].ProposeAsync(Encoding.UTF8.GetBytes("held-0")).AsTask().WaitAsync(Waits.Limit);
        await flush.Entered.WaitAsync(Waits.Limit);
        await run.Cluster[leader].ProposeAsync(Encoding.UTF8.GetBytes("held-1")).AsTask().WaitAsync(Waits.Limit);
        var (first, second) = (run.IndexOf(leader, "held-0"), run.IndexOf(leader, "held-1"));

        // The follower's loop still steps heartbeats and answers them (no persistence needed), for
        // three election timeouts, so the leader keeps its quorum contact and nobody campaigns.
        var options = run.Cluster.Options(follower, null).Raft;
        var answers = 3 * options.ElectionTimeoutTicks / options.HeartbeatTimeoutTicks;
        await run.Sent(follower).WaitForCountAsync(m => m.Type == MessageType.HeartbeatResponse && m.To == leader, answers, countSentBefore: false);

        Assert.That(run.AcknowledgedUpTo(follower), Is.LessThan(first), "the follower acknowledged an entry behind its hung fsync");
        Assert.That(run.Cluster.Machines[follower].AppliedIndex, Is.LessThan(first), "the follower applied an entry behind its hung fsync");
        Assert.That(run.Cluster.Nodes.Values.Select(n => n.Status.Raft.HardState.Term), Is.All.EqualTo(term), "an election ran while the follower's fsync hung");

        flush.Release();
        await run.WaitUntilAcknowledgedAsync(follower, second);
        await run.Cluster.Machines[follower].WaitForAppliedAsync(second).WaitAsync(Waits.Limit);
    }

    private static void AssertNamesTheFailedFlush(Exception? cause)
    {
        Assert.That(cause, Is.InstanceOf<StorageFaultedException>(), "the stop cause is the log's fault");
        Assert.That(cause!.Message, Does.Contain("Injected failure of Flush"), "the stop cause names the failed flush");
        Assert.That(cause.InnerException, Is.InstanceOf<IOException>());
    }
}
