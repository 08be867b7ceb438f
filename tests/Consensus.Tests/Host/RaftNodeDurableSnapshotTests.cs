using System.Text;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>
/// Snapshots of a state machine that is durable by itself (<see cref="IDurableStateMachine{TResult}"/>,
/// modelled by <see cref="DurableRecordingStateMachine"/>, which loses at a crash everything applied
/// after its last sync): a snapshot by policy copies no data and compacts the log only behind what
/// the state machine synced; a follower far behind gets the state captured when it is sent — newer
/// than the leader's snapshot — and then applies exactly the entries after it; a crash at any
/// file-system operation of the snapshot and compaction, and a plain restart, replay exactly the
/// tail after the state machine's durable index.
/// </summary>
[TestFixture]
public sealed class RaftNodeDurableSnapshotTests
{
    private static ReadOnlyMemory<byte> Bytes(string s) => Encoding.UTF8.GetBytes(s);

    /// <summary>A snapshot every <paramref name="entries"/> applied entries, the log compacted right up to it.</summary>
    private static Func<RaftNodeOptions, RaftNodeOptions> SnapshotEvery(ulong entries) =>
        o => o with { SnapshotEveryEntries = entries, SnapshotEveryLogBytes = 0, Log = new DurableRaftLogOptions { RetainedEntries = 0 } };

    [Test]
    public async Task ASnapshotByPolicyCopiesNoDataAndCompactsTheLogOnlyBehindWhatTheStateMachineSynced()
    {
        await using var cluster = new HostCluster(seed: 171, SnapshotEvery(10), () => new DurableRecordingStateMachine());
        var node = await cluster.StartNodeAsync(1, [1]);
        await cluster.WaitForLeaderAsync();
        for (var i = 0; i < 12; i++)
        {
            await node.ProposeAsync(Bytes($"c{i}")).AsTask().WaitAsync(Waits.Limit);
        }

        await node.WaitForSnapshotAsync(10).WaitAsync(Waits.Limit);
        var machine = (DurableRecordingStateMachine)cluster.Machines[1];
        var snapshotIndex = node.Status.SnapshotIndex;
        Assert.That(machine.Captures, Is.Zero, "a snapshot by policy never captures the state machine's data");
        Assert.That(machine.Syncs, Is.GreaterThanOrEqualTo(1));
        Assert.That(machine.DurableIndex, Is.GreaterThanOrEqualTo(snapshotIndex), "the log is compacted only behind what the state machine made durable");

        await cluster.StopNodeAsync(1);
        await using (var log = await DurableRaftLog.OpenAsync(cluster.Disk, HostCluster.DataDirectory(1)))
        {
            Assert.That(log.FirstIndex(), Is.EqualTo(snapshotIndex + 1), "compacted up to the snapshot");
            await using var data = await log.OpenSnapshotDataAsync(snapshotIndex);
            var window = new AppliedRequestWindow(RaftNodeOptions.DefaultDeduplicationWindow);
            Assert.That(await window.ReadHeaderAsync(data, "test", CancellationToken.None), Is.False, "the snapshot's header says no data follows");
            Assert.That(data.ReadByte(), Is.EqualTo(-1), "and none does");
        }
    }

    [Test]
    public async Task AFollowerFarBehindGetsAnImageNewerThanTheLeadersSnapshotThenAppliesExactlyTheRest()
    {
        await using var cluster = await HostCluster.StartAsync(3, seed: 172, SnapshotEvery(50), () => new DurableRecordingStateMachine());
        var leaderId = cluster.LeaderId();
        var leader = cluster[leaderId];
        var followerId = cluster.FollowerId();
        cluster.Network.Isolate(followerId);

        // One at a time: the snapshot at the 50th applied entry is followed by at least ten more,
        // so the leader's applied index ends above its newest snapshot.
        for (var i = 0; i < 60; i++)
        {
            await leader.ProposeAsync(Bytes($"c{i}")).AsTask().WaitAsync(Waits.Limit);
        }

        await leader.WaitForSnapshotAsync(50).WaitAsync(Waits.Limit);
        var leaderSnapshot = leader.Status.SnapshotIndex;
        var leaderApplied = leader.Status.AppliedIndex;
        Assert.That(leaderApplied, Is.GreaterThan(leaderSnapshot));
        Assert.That(cluster[followerId].Status.AppliedIndex, Is.LessThan(leaderSnapshot), "the follower is behind the compacted log");

        cluster.Network.Heal();
        var follower = cluster.Machines[followerId];
        await follower.WaitForAppliedAsync(leaderApplied).WaitAsync(Waits.Limit);
        for (var i = 60; i < 65; i++)
        {
            await leader.ProposeAsync(Bytes($"c{i}")).AsTask().WaitAsync(Waits.Limit);
        }

        await cluster.WaitForAllAppliedAsync(leader.Status.AppliedIndex);

        var events = follower.Events;
        var restore = events.Single(e => e.StartsWith("restore ", StringComparison.Ordinal));
        var restoredAt = ulong.Parse(restore["restore ".Length..], System.Globalization.CultureInfo.InvariantCulture);
        Assert.That(restoredAt, Is.GreaterThan(leaderSnapshot), "the image is the state when it was sent, newer than the leader's snapshot");
        Assert.That(restoredAt, Is.GreaterThanOrEqualTo(leaderApplied));

        // After the restore: batches that start right after it and follow each other, none twice.
        var next = restoredAt + 1;
        foreach (var e in events.SkipWhile(e => e != restore).Skip(1))
        {
            var range = e["apply ".Length..].Split('-').Select(ulong.Parse).ToArray();
            Assert.That(range[0], Is.EqualTo(next), $"applies after the restore: {string.Join(", ", events)}");
            next = range[1] + 1;
        }

        Assert.That(next - 1, Is.EqualTo(leader.Status.AppliedIndex));
        Assert.That(follower.Commands, Is.EqualTo(cluster.Machines[leaderId].Commands), "the same commands, each once, in the same order");
        Assert.That(follower.Commands, Is.EqualTo(Enumerable.Range(0, 65).Select(i => $"c{i}")));
        Assert.That(cluster.Machines[leaderId].Captures, Is.EqualTo(follower.Restores), "the leader captured its state only to send it");
    }

    [Test]
    public async Task ARestartWithOnlyTheStateMachinesFilesAndTheCompactedLogReplaysTheTailAfterItsDurableIndex()
    {
        await using var cluster = new HostCluster(seed: 173, SnapshotEvery(20), () => new DurableRecordingStateMachine());
        var node = await cluster.StartNodeAsync(1, [1]);
        await cluster.WaitForLeaderAsync();
        for (var i = 0; i < 27; i++)
        {
            await node.ProposeAsync(Bytes($"c{i}")).AsTask().WaitAsync(Waits.Limit);
        }

        await node.WaitForSnapshotAsync(20).WaitAsync(Waits.Limit);
        var machine = (DurableRecordingStateMachine)cluster.Machines[1];
        var applied = machine.AppliedIndex;
        await cluster.StopNodeAsync(1);

        // A crash: the state machine keeps only what its last sync (the snapshot's) made durable.
        var reopened = machine.Reopen();
        var durable = reopened.AppliedIndex;
        Assert.That(durable, Is.LessThan(applied), "entries applied after the sync are lost with the crash");
        node = await cluster.StartNodeAsync(1, [1], reopened);
        await cluster.WaitForLeaderAsync();
        await node.ProposeAsync(Bytes("after")).AsTask().WaitAsync(Waits.Limit);

        Assert.That(reopened.Restores, Is.Zero);
        Assert.That(reopened.Events[0], Does.StartWith($"apply {durable + 1}-"), "the replay starts right after the durable index");
        Assert.That(reopened.Commands, Is.EqualTo(Enumerable.Range(0, 27).Select(i => $"c{i}").Append("after")), "the tail replayed once, nothing lost");
    }

    [Test]
    public async Task AStateMachineThatLostItsFilesCannotStartBehindAMetadataOnlySnapshot()
    {
        await using var cluster = new HostCluster(seed: 174, SnapshotEvery(10), () => new DurableRecordingStateMachine());
        var node = await cluster.StartNodeAsync(1, [1]);
        await cluster.WaitForLeaderAsync();
        for (var i = 0; i < 12; i++)
        {
            await node.ProposeAsync(Bytes($"c{i}")).AsTask().WaitAsync(Waits.Limit);
        }

        await node.WaitForSnapshotAsync(10).WaitAsync(Waits.Limit);
        await cluster.StopNodeAsync(1);

        var error = Assert.ThrowsAsync<InvalidOperationException>(async () => await cluster.StartNodeAsync(1, [1], new DurableRecordingStateMachine()));
        Assert.That(error!.Message, Does.Contain("carries no data"));
    }

    /// <summary>
    /// Crashes the disk after each file-system operation, in turn, from the proposal that makes a
    /// snapshot due to the end of the log's compaction (the entry's write and sync, the state
    /// machine's sync, the snapshot file, the marker, the released segments). Every restart must
    /// find the state machine's files at or past whatever the log was compacted to, and replay
    /// every acknowledged command exactly once.
    /// </summary>
    [Test]
    public async Task ACrashAtEveryFileSystemOperationOfAMetadataSnapshotAndItsCompactionRecoversEveryAcknowledgedCommand()
    {
        const int Seed = 175;
        TestContext.Out.WriteLine($"seed {Seed}");
        var crashesAfterTheSnapshotWasInstalled = 0;
        for (var step = 1; ; step++)
        {
            Assert.That(step, Is.LessThan(200), "the snapshot step ends within 200 file-system operations");
            await using var cluster = new HostCluster(Seed + step, SnapshotEvery(10), () => new DurableRecordingStateMachine());
            var node = await cluster.StartNodeAsync(1, [1]);
            await cluster.WaitForLeaderAsync();
            var acknowledged = new List<string>();
            var i = 0;
            while (node.Status.AppliedIndex < 9)
            {
                await node.ProposeAsync(Bytes($"c{i}")).AsTask().WaitAsync(Waits.Limit);
                acknowledged.Add($"c{i++}");
            }

            // The next entry makes the snapshot due (10 applied entries).
            var machine = (DurableRecordingStateMachine)cluster.Machines[1];
            cluster.Disk.CrashAfterOperation = cluster.Disk.OperationCount + step;
            var stopped = StoppedAsync(node);
            var last = node.ProposeAsync(Bytes($"c{i}")).AsTask();
            var installed = node.WaitForSnapshotAsync(10);
            await Task.WhenAny(installed, stopped).WaitAsync(Waits.Limit);
            if (installed.IsCompleted && !cluster.Disk.IsCrashed)
            {
                cluster.Disk.CrashAfterOperation = null;
                TestContext.Out.WriteLine($"the step took {step - 1} file-system operations; {crashesAfterTheSnapshotWasInstalled} crashes found the snapshot installed at restart");
                Assert.That(crashesAfterTheSnapshotWasInstalled, Is.GreaterThan(0), "some crashes came after the compaction");
                return;
            }

            var lastAcknowledged = last.IsCompletedSuccessfully;
            try
            {
                await cluster.StopNodeAsync(1);
            }
            catch (Exception e) when (cluster.Disk.IsCrashed)
            {
                // Closing files on a crashed disk may fail: the process is gone.
                TestContext.Out.WriteLine($"step {step}: stop after the crash: {e.GetType().Name}");
                cluster.Nodes.Remove(1);
            }

            cluster.Disk.Restart();

            var reopened = machine.Reopen();
            node = await cluster.StartNodeAsync(1, [1], reopened);
            if (node.Status.SnapshotIndex > 0)
            {
                crashesAfterTheSnapshotWasInstalled++;
                Assert.That(reopened.AppliedIndex, Is.GreaterThanOrEqualTo(node.Status.SnapshotIndex), $"step {step}: the state machine's files hold the snapshot's index");
            }

            await cluster.WaitForLeaderAsync();
            await node.ProposeAsync(Bytes("after")).AsTask().WaitAsync(Waits.Limit);
            var commands = reopened.Commands;
            var expected = commands.Contains($"c{i}") || lastAcknowledged ? acknowledged.Append($"c{i}") : acknowledged;
            Assert.That(commands, Is.EqualTo(expected.Append("after")), $"step {step}: every acknowledged command once, in order");
        }
    }

    /// <summary>Completes when <paramref name="node"/> stops (its leader stream ends or fails).</summary>
    private static async Task StoppedAsync(RaftNode<long> node)
    {
        try
        {
            await foreach (var _ in node.LeaderChanges())
            {
            }
        }
        catch (NodeStoppedException)
        {
        }
    }
}
