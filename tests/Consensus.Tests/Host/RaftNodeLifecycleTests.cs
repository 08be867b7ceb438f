using System.Text;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Storage;
using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using Microsoft.Extensions.Time.Testing;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>
/// The node's life: fail-stop on a failed fsync, disposal under load, restarts that replay only
/// what the state machine has not applied, and a run with no thread of its own.
/// </summary>
[TestFixture]
public sealed class RaftNodeLifecycleTests
{
    private static ReadOnlyMemory<byte> Bytes(string s) => Encoding.UTF8.GetBytes(s);

    [Test]
    public async Task AFailedFsyncStopsTheNodeForGoodAndFailsItsPendingAndLaterCallsWithTheCause()
    {
        await using var cluster = await HostCluster.StartAsync(1, seed: 21);
        var node = cluster[1];
        await node.ProposeAsync(Bytes("before")).AsTask().WaitAsync(Waits.Limit);
        var changes = node.LeaderChanges().GetAsyncEnumerator();
        Assert.That(await changes.MoveNextAsync(), Is.True);

        cluster.Disk.FailWhen = op => op.Kind == FaultOperationKind.Flush && op.Path.StartsWith("/node1/wal", StringComparison.Ordinal);
        var pending = Enumerable.Range(0, 10).Select(i => node.ProposeAsync(Bytes($"p{i}")).AsTask()).ToArray();

        foreach (var call in pending)
        {
            var error = Assert.ThrowsAsync<NodeStoppedException>(async () => await call.WaitAsync(Waits.Limit));
            Assert.That(error!.Cause, Is.InstanceOf<IOException>(), "the cause is the storage failure");
        }

        var status = node.Status;
        Assert.That(status.IsStopped, Is.True);
        Assert.That(status.StopCause, Is.InstanceOf<IOException>());
        Assert.That(async () => await node.ProposeAsync(Bytes("later")), Throws.TypeOf<NodeStoppedException>());
        Assert.That(async () => await node.ReadIndexAsync(), Throws.TypeOf<NodeStoppedException>());
        Assert.That(async () => await changes.MoveNextAsync(), Throws.TypeOf<NodeStoppedException>(), "the leader stream fails with the stop");
        Assert.That(cluster.Machines[1].Commands, Is.EqualTo(new[] { "before" }), "nothing unsynced was applied");
        await changes.DisposeAsync();
    }

    [Test]
    public async Task AStopFailsTheSnapshotWaitsWithTheStopsExceptionAsItFailsPendingProposals()
    {
        // A snapshot wait (NodeDiagnostics.WaitForSnapshotAsync, for tests) is a pending call like
        // any other: a node that fails, or is disposed, ends it with the NodeStoppedException its
        // proposals get (the cause when it failed, none when disposed), and a later wait fails at
        // once; before, such waits were kept and never completed.
        await using var cluster = await HostCluster.StartAsync(2, seed: 2602);
        await cluster[1].ProposeAsync(Bytes("before")).AsTask().WaitAsync(Waits.Limit);
        var failing = cluster[1];
        var disposed = cluster[2];
        var failingWait = NodeDiagnostics.WaitForSnapshotAsync(failing, 1_000_000);
        var disposedWait = NodeDiagnostics.WaitForSnapshotAsync(disposed, 1_000_000);
        Assert.That(failingWait.IsCompleted || disposedWait.IsCompleted, Is.False, "no snapshot is near index 1,000,000");

        cluster.Disk.FailWhen = op => op.Kind == FaultOperationKind.Flush && op.Path.StartsWith("/node1/wal", StringComparison.Ordinal);
        var proposal = failing.ProposeAsync(Bytes("fails")).AsTask();
        var proposalError = Assert.ThrowsAsync<NodeStoppedException>(async () => await proposal.WaitAsync(Waits.Limit));
        var failedWaitError = Assert.ThrowsAsync<NodeStoppedException>(async () => await failingWait.WaitAsync(Waits.Limit));
        Assert.That(failedWaitError!.Cause, Is.InstanceOf<IOException>().And.SameAs(proposalError!.Cause), "the wait fails with the stop's cause, as the proposal did");
        var laterError = Assert.ThrowsAsync<NodeStoppedException>(async () => await NodeDiagnostics.WaitForSnapshotAsync(failing, 1_000_000).WaitAsync(Waits.Limit));
        Assert.That(laterError!.Cause, Is.SameAs(proposalError.Cause), "a wait asked after the stop fails at once");
        Assert.That(NodeDiagnostics.WaitForSnapshotAsync(failing, 0).IsCompletedSuccessfully, Is.True, "a wait already met still completes");

        await cluster.StopNodeAsync(2);
        var disposedError = Assert.ThrowsAsync<NodeStoppedException>(async () => await disposedWait.WaitAsync(Waits.Limit));
        Assert.That(disposedError!.Cause, Is.Null, "a disposal has no cause");
    }

    [Test]
    public async Task DisposingUnderLoadCompletesEveryCallAndReleasesTheDataDirectories()
    {
        var cluster = await HostCluster.StartAsync(3, seed: 22);
        var calls = new List<Task<long>>();
        for (var i = 0; i < 300; i++)
        {
            calls.Add(cluster[(ulong)((i % 3) + 1)].ProposeAsync(Bytes($"load{i}")).AsTask());
        }

        calls.Add(cluster[1].ProposeAsync(Bytes("last")).AsTask());
        await Task.WhenAny(calls[0], Task.Delay(Waits.Limit));
        var machines = cluster.Machines.Values.ToList();
        await cluster.DisposeAsync().AsTask().WaitAsync(Waits.Limit);
        machines.ForEach(m => m.Retired = true);

        var outcomes = await Task.WhenAll(calls.Select(Outcome)).WaitAsync(Waits.Limit);
        Assert.That(outcomes, Is.All.EqualTo("applied").Or.EqualTo(nameof(NodeStoppedException)).Or.EqualTo(nameof(ProposalDroppedException)).Or.EqualTo(nameof(NoLeaderException)),
            "every call completed, with a result or a specific error");
        foreach (var id in new ulong[] { 1, 2, 3 })
        {
            // Every file closed and the lock released: the directory opens again at once.
            await using var log = await DurableRaftLog.OpenAsync(cluster.Disk, HostCluster.DataDirectory(id));
            Assert.That(log.IsEmpty, Is.False);
        }

        static async Task<string> Outcome(Task<long> call)
        {
            try
            {
                await call;
                return "applied";
            }
            catch (Exception e)
            {
                return e.GetType().Name;
            }
        }
    }

    [Test]
    public async Task ARestartWithADurableStateMachineAheadOfTheSnapshotReplaysOnlyWhatItHasNotApplied()
    {
        await using var cluster = new HostCluster(seed: 23, o => o with { SnapshotEveryEntries = 10 });
        var machine = new RecordingStateMachine();
        var node = await cluster.StartNodeAsync(1, [1], machine);
        await cluster.WaitForLeaderAsync();
        for (var i = 0; i < 13; i++)
        {
            await node.ProposeAsync(Bytes($"c{i}")).AsTask().WaitAsync(Waits.Limit);
        }

        await node.WaitForSnapshotAsync(10).WaitAsync(Waits.Limit);
        await cluster.StopNodeAsync(1);
        Assert.That(machine.AppliedIndex, Is.GreaterThan(node.Status.SnapshotIndex), "the state machine is ahead of the snapshot");

        // Same machine object: it kept everything it applied (index above the snapshot's).
        node = await cluster.StartNodeAsync(1, [1], machine);
        await cluster.WaitForLeaderAsync();
        var result = await node.ProposeAsync(Bytes("after")).AsTask().WaitAsync(Waits.Limit);

        Assert.That(machine.Restores, Is.Zero, "nothing to restore: the state machine is ahead of the snapshot");
        Assert.That(machine.Commands, Is.EqualTo(Enumerable.Range(0, 13).Select(i => $"c{i}").Append("after")), "no command applied twice");
        Assert.That(result, Is.EqualTo(14));
    }

    [Test]
    public async Task ARestartWithAnEmptyStateMachineRestoresTheSnapshotThenReplaysTheLogAfterIt()
    {
        await using var cluster = new HostCluster(seed: 24, o => o with { SnapshotEveryEntries = 10 });
        var node = await cluster.StartNodeAsync(1, [1]);
        await cluster.WaitForLeaderAsync();
        for (var i = 0; i < 13; i++)
        {
            await node.ProposeAsync(Bytes($"c{i}")).AsTask().WaitAsync(Waits.Limit);
        }

        var before = cluster.Machines[1].Commands;
        await node.WaitForSnapshotAsync(10).WaitAsync(Waits.Limit);
        await cluster.StopNodeAsync(1);
        var fresh = new RecordingStateMachine();
        await cluster.StartNodeAsync(1, [1], fresh);
        await cluster.WaitForLeaderAsync();
        await cluster[1].ProposeAsync(Bytes("after")).AsTask().WaitAsync(Waits.Limit);

        Assert.That(fresh.Restores, Is.EqualTo(1));
        Assert.That(fresh.Commands, Is.EqualTo(before.Append("after")));
    }

    [Test]
    public async Task AfterACrashEveryAcknowledgedProposalSurvivesARestart()
    {
        await using var cluster = new HostCluster(seed: 25);
        var node = await cluster.StartNodeAsync(1, [1]);
        await cluster.WaitForLeaderAsync();
        var acknowledged = new List<string>();
        for (var i = 0; i < 10; i++)
        {
            await node.ProposeAsync(Bytes($"c{i}")).AsTask().WaitAsync(Waits.Limit);
            acknowledged.Add($"c{i}");
        }

        cluster.Disk.Crash();
        _ = node.ProposeAsync(Bytes("in-flight")).AsTask();
        await cluster.StopNodeAsync(1);
        cluster.Disk.Restart();

        var fresh = new RecordingStateMachine();
        await cluster.StartNodeAsync(1, [1], fresh);
        await cluster.WaitForLeaderAsync();
        await cluster[1].ReadIndexAsync().AsTask().WaitAsync(Waits.Limit);

        Assert.That(fresh.Commands.Take(10), Is.EqualTo(acknowledged));
    }

    [Test]
    public void OnOneThreadWithAManualClockTheNodeNeedsNoThreadOfItsOwnAndCancellationBeforeTheTurnWithdraws()
    {
        var scheduler = new DeterministicTaskScheduler();
        var time = new FakeTimeProvider();
        var disk = new FaultInjectingFileSystem(26);
        using var network = new InProcessNetwork(new InProcessNetworkOptions { Seed = 26, TimeProvider = time });
        var machine = new RecordingStateMachine();
        var options = new RaftNodeOptions
        {
            NodeId = 1,
            InitialVoters = [1],
            DataDirectory = "/node1",
            FileSystem = disk,
            TimeProvider = time,
            Scheduler = scheduler,
            TickInterval = TimeSpan.FromMilliseconds(10),
            Raft = new RaftOptions { RandomSeed = 26 },
            Log = new DurableRaftLogOptions { Wal = new WalOptions { Threading = WalThreading.CallerThread } },
        };

        var start = scheduler.Run(() => RaftNode<long>.StartAsync(options, machine, network.CreateTransport(1)).AsTask());
        scheduler.RunUntilIdle();
        Assert.That(start.IsCompletedSuccessfully, Is.True, "started with only the scheduler's thread");
        var node = start.Result;
        for (var i = 0; i < 100 && node.Status.Raft.SoftState.Role != StateRole.Leader; i++)
        {
            time.Advance(options.TickInterval);
            scheduler.RunUntilIdle();
        }

        Assert.That(node.Status.Raft.SoftState.Role, Is.EqualTo(StateRole.Leader));

        using var cts = new CancellationTokenSource();
        var withdrawn = node.ProposeAsync(Bytes("withdrawn"), cts.Token).AsTask();
        cts.Cancel();
        var kept = node.ProposeAsync(Bytes("kept")).AsTask();
        scheduler.RunUntilIdle();

        Assert.That(kept.IsCompletedSuccessfully, Is.True, "proposed, persisted, committed and applied without time passing or another thread");
        Assert.That(withdrawn.IsCanceled, Is.True);
        Assert.That(machine.Commands, Is.EqualTo(new[] { "kept" }), "cancelled before the loop's turn: never appended");

        var disposed = scheduler.Run(() => node.DisposeAsync().AsTask());
        scheduler.RunUntilIdle();
        Assert.That(disposed.IsCompletedSuccessfully, Is.True);
    }
}
