using System.Text;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>
/// A node's own snapshot compacts its log without stopping its loop's Readies: the compaction's
/// marker is written to the log between two Readies and becomes durable with the fsync they share,
/// and only then is the log compacted and its segments released. What must hold while a marker
/// waits for that fsync: the loop keeps writing the Readies that arrive; and a crash then (the
/// marker and the Readies around it written, none durable; the disk keeps, drops or tears each
/// unsynced write from its seed) leaves a log that opens, and a node that, restarted from it,
/// applies exactly the cluster's history, each command once.
/// </summary>
public class RaftNodeCompactionPipelineTests
{
    private const int SnapshotEvery = 8;

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    [TestCase(4)]
    public async Task ACrashWhileACompactionMarkerWaitsForTheFsyncOfTheReadiesAroundItRecoversTheClustersHistory(int round)
    {
        var seed = 1800 + round;
        await using var run = await PipelineCluster.StartAsync(
            seed,
            RaftNodeOptions.DefaultMaxReadiesInFlight,
            o => o with { SnapshotEveryEntries = SnapshotEvery, SnapshotEveryLogBytes = 0, Log = DurableRaftLogOptions.Default with { RetainedEntries = 0 } });
        var (leader, follower) = (run.Cluster.LeaderId(), run.Cluster.FollowerId());
        var node = run.Cluster[follower];
        var disk = run.Disk(follower);

        // Once the follower has written a compaction's marker, every flush of its write-ahead log
        // hangs: the marker's fsync, and the Readies written behind it, never become durable.
        var directory = HostCluster.DataDirectory(follower);
        using var hold = new FlushHold();
        disk.BeforeEntering = (kind, path) =>
        {
            if (kind == FaultOperationKind.Flush && path.StartsWith($"{directory}/wal", StringComparison.Ordinal) && node.CompactionInFlight != 0)
            {
                hold.Block();
            }
        };

        // The leader commits each proposal with the other follower meanwhile. Once a flush hangs
        // with a marker written, no fsync completes on the follower: the marker stays in flight.
        var proposed = 0;
        for (; !hold.Entered.IsCompleted; proposed++)
        {
            Assert.That(proposed, Is.LessThan(20 * SnapshotEvery), "the follower never flushed its log with a compaction marker written");
            await run.Cluster[leader].ProposeAsync(Encoding.UTF8.GetBytes($"c{proposed}")).AsTask().WaitAsync(Waits.Limit);
        }

        var marker = node.CompactionInFlight;
        Assert.That(marker, Is.Not.Zero);
        for (var i = 0; i < 3; i++, proposed++)
        {
            await run.Cluster[leader].ProposeAsync(Encoding.UTF8.GetBytes($"c{proposed}")).AsTask().WaitAsync(Waits.Limit);
        }

        // A Ready is being persisted beside the marker: written before it and waiting for the held
        // fsync, or written behind it while that fsync hangs (the loop never stopped for it).
        await WaitUntilAsync(() => node.ReadiesWritten > node.ReadiesDurable, "no Ready was being persisted beside the compaction marker");
        var last = run.IndexOf(leader, $"c{proposed - 1}");
        Assert.That(node.CompactionInFlight, Is.EqualTo(marker), "the compaction completed although its fsync is held");
        Assert.That(node.Status.PersistedIndex, Is.LessThan(last), "the follower made entries durable although its fsync is held");
        Assert.That(node.Status.SnapshotIndex, Is.LessThan(marker), "the log was compacted before its marker was durable");
        TestContext.Out.WriteLine($"node {follower}: compaction to {marker} written, {node.ReadiesWritten - node.ReadiesDurable} Readies being persisted, durable up to {node.Status.PersistedIndex}, the leader at {last}");

        // Power fails with the marker and the Readies around it unsynced.
        disk.Crash();
        hold.Release();
        await run.Cluster.StopNodeAsync(follower);
        disk.BeforeEntering = null;
        disk.Restart();

        // The log opens (a torn or lost marker, Readies kept or not around it) and holds a run of
        // the cluster's history, in order.
        var recovered = (await run.ReadLogAsync(follower)).Values.Where(c => c.Length > 0).ToList();
        var history = run.Cluster.Machines[leader].Commands.ToList();
        var start = recovered.Count == 0 ? 0 : history.IndexOf(recovered[0]);
        Assert.That(start, Is.GreaterThanOrEqualTo(0), $"the recovered log starts with '{recovered.FirstOrDefault()}', which the cluster never applied");
        Assert.That(recovered, Is.EqualTo(history.Skip(start).Take(recovered.Count)), "the recovered log is not a run of the cluster's history");

        // Back from that disk, with nothing in memory: it applies exactly the cluster's history.
        var machine = new RecordingStateMachine();
        await run.StartNodeAsync(follower, machine);
        await run.Cluster[leader].ProposeAsync(Encoding.UTF8.GetBytes("after")).AsTask().WaitAsync(Waits.Limit);
        await run.Cluster.WaitForAllAppliedAsync(run.Cluster.Machines[leader].AppliedIndex);
        Assert.That(machine.Commands, Is.EqualTo(run.Cluster.Machines[leader].Commands), "the restarted follower's history differs from the cluster's");
        Assert.That(machine.Commands.Distinct().Count(), Is.EqualTo(machine.Commands.Count), "a command applied twice");
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Waits.Limit;
        while (!condition())
        {
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), what);
            await Task.Delay(5);
        }
    }
}
