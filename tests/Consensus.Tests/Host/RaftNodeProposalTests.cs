using System.Text;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>
/// ProposeAsync: results come back on the node the command was proposed on, leader or follower;
/// every command applies exactly once and in the same order everywhere; failures are specific and
/// bounded in time.
/// </summary>
[TestFixture]
public sealed class RaftNodeProposalTests
{
    private static ReadOnlyMemory<byte> Bytes(string s) => Encoding.UTF8.GetBytes(s);

    [Test]
    public async Task ASingleNodeAppliesAProposalAndReturnsTheStateMachinesResult()
    {
        await using var cluster = await HostCluster.StartAsync(1, seed: 1);

        var first = await cluster[1].ProposeAsync(Bytes("a")).AsTask().WaitAsync(Waits.Limit);
        var second = await cluster[1].ProposeAsync(Bytes("b")).AsTask().WaitAsync(Waits.Limit);

        Assert.That((first, second), Is.EqualTo((1L, 2L)), "the result is the state machine's: the count of commands applied");
        Assert.That(cluster.Machines[1].Commands, Is.EqualTo(new[] { "a", "b" }));
    }

    [Test]
    public async Task ProposalsFromEveryNodeReturnTheirResultsAndApplyOnceInOneOrderEverywhere()
    {
        await using var cluster = await HostCluster.StartAsync(3, seed: 2);

        var calls = new List<Task<long>>();
        for (var i = 0; i < 30; i++)
        {
            foreach (var id in new ulong[] { 1, 2, 3 })
            {
                calls.Add(cluster[id].ProposeAsync(Bytes($"{id}-{i}")).AsTask());
            }
        }

        var results = await Task.WhenAll(calls).WaitAsync(Waits.Limit);
        await cluster.WaitForAllAppliedAsync(cluster.Machines.Values.Max(m => m.AppliedIndex));

        var order = cluster.Machines[1].Commands;
        Assert.That(order, Has.Count.EqualTo(90).And.Unique, "each command applied exactly once");
        Assert.That(cluster.Machines[2].Commands, Is.EqualTo(order));
        Assert.That(cluster.Machines[3].Commands, Is.EqualTo(order));
        Assert.That(results.Order(), Is.EqualTo(Enumerable.Range(1, 90).Select(i => (long)i)),
            "each caller got its own command's position back, none another's");
    }

    [Test]
    public async Task WavesOfCallsWithAndWithoutTokensEachGetTheirOwnCommandsAnswer()
    {
        // Calls without a token reuse the call objects of earlier waves (PendingProposal's pool);
        // calls with one never do. Each result is the position of the caller's own command in the
        // proposing node's applied order: a call answered with another's outcome, or twice, or not
        // at all, shows here.
        await using var cluster = await HostCluster.StartAsync(3, seed: 19);
        using var live = new CancellationTokenSource();
        for (var wave = 0; wave < 6; wave++)
        {
            var calls = new List<(ulong Node, string Command, Task<long> Result)>();
            for (var i = 0; i < 40; i++)
            {
                foreach (var id in new ulong[] { 1, 2, 3 })
                {
                    var command = $"{wave}-{id}-{i}";
                    var token = i % 3 == 0 ? live.Token : CancellationToken.None;
                    calls.Add((id, command, cluster[id].ProposeAsync(Bytes(command), token).AsTask()));
                }
            }

            await Task.WhenAll(calls.Select(c => c.Result)).WaitAsync(Waits.Limit);
            foreach (var (id, command, result) in calls)
            {
                var applied = cluster.Machines[id].Commands;
                Assert.That(applied[(int)result.Result - 1], Is.EqualTo(command), $"node {id}'s caller of {command} got its own command's position");
            }
        }

        var order = cluster.Machines[1].Commands;
        Assert.That(order, Has.Count.EqualTo(6 * 120).And.Unique, "each command applied exactly once");
    }

    [Test]
    public async Task TheCallersOneAppliedBatchAnswersContinueInLogOrderOnOnePoolThread()
    {
        await using var cluster = await HostCluster.StartAsync(1, seed: 11);
        var batches = new List<string[]>();
        cluster.Machines[1].BeforeApply = batch =>
        {
            lock (batches)
            {
                batches.Add(batch.Commands.Select(c => Encoding.UTF8.GetString(c.Data.Span)).ToArray());
            }

            return Task.CompletedTask;
        };

        // Continuations registered as an awaiting caller's would be (run synchronously by whoever
        // completes the task): where they run is where callers continue.
        var ran = new List<(string Command, int Thread, bool Pool)>();
        var continuations = new List<Task>();
        for (var i = 0; i < 50; i++)
        {
            var command = $"c{i}";
            continuations.Add(cluster[1].ProposeAsync(Bytes(command)).AsTask().ContinueWith(
                _ =>
                {
                    lock (ran)
                    {
                        ran.Add((command, Environment.CurrentManagedThreadId, Thread.CurrentThread.IsThreadPoolThread));
                    }
                },
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default));
        }

        await Task.WhenAll(continuations).WaitAsync(Waits.Limit);

        Assert.That(ran.All(r => r.Pool), Is.True, "callers continue on the scheduler (the pool), never on a thread of the node's own");
        var shared = batches.Where(b => b.Length > 1).ToList();
        Assert.That(shared, Is.Not.Empty, "50 proposals posted at once share applied batches");
        foreach (var batch in shared)
        {
            var ofBatch = ran.Where(r => batch.Contains(r.Command)).ToList();
            Assert.That(ofBatch.Select(r => r.Thread).Distinct().Count(), Is.EqualTo(1), $"one release for the batch {string.Join(",", batch)}");
            Assert.That(ofBatch.Select(r => r.Command), Is.EqualTo(batch), "released in log order");
        }
    }

    [Test]
    public async Task ACallerThatBlocksOnTheOthersOfItsBatchDoesNotHoldThemUp()
    {
        await using var cluster = await HostCluster.StartAsync(1, seed: 13);
        var (batches, applying, gate) = RecordAppliesHoldingTheOneOfHold(cluster);

        // While "hold" applies, 20 more commit behind it and apply as one batch once it ends.
        var hold = cluster[1].ProposeAsync(Bytes("hold")).AsTask();
        await applying.Task.WaitAsync(Waits.Limit);
        var calls = Enumerable.Range(0, 20).Select(i => cluster[1].ProposeAsync(Bytes($"c{i}")).AsTask()).ToArray();

        // The first caller's continuation waits synchronously for all the others, as sync-over-async
        // code does: released one after another on one thread, the others would never be completed.
        var blocking = calls[0].ContinueWith(
            _ => Task.WaitAll(calls[1..], Waits.Limit),
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
        gate.SetResult();

        Assert.That(await blocking.WaitAsync(Waits.Limit), Is.True, "every other caller completed while the first one blocked");
        await hold.WaitAsync(Waits.Limit);
        var batchOfFirst = batches.Single(b => b.Contains("c0"));
        Assert.That(batchOfFirst.Length, Is.GreaterThan(1), "the blocked caller shared its batch (else nothing was tested)");
    }

    [Test]
    public async Task ALargeBatchsCallersAreReleasedOnMoreThanOneThreadWithoutWaitingForATick()
    {
        // A release of at least two work items' worth of callers is drained by one work item per
        // core: while one thread runs a caller's continuation, the callers after it are completed
        // on another. Shown by a first caller that blocks until every other caller of its batch is
        // answered, with the node's ticks stopped: a release on one thread would then complete the
        // others only when the loop's tick helps it (never, here).
        Assume.That(Environment.ProcessorCount, Is.GreaterThanOrEqualTo(2), "a release is split across cores only where there are two");
        const int Callers = 4 * ProposalRelease<long>.CallersPerExtraWorkItem;
        var ticks = new StoppableTicks();
        await using var cluster = await HostCluster.StartAsync(1, seed: 25, o => o with { TimeProvider = ticks });
        await cluster[1].ProposeAsync(Bytes("settle")).AsTask().WaitAsync(Waits.Limit);
        using var stopped = ticks.Stop();

        // One write is held in its fsync, so every call below is held back in the core (group
        // commit) and goes out in the one Ready taken when that write is reported durable: one
        // committed batch, one release.
        using var hold = new FlushHold();
        var wal = $"{HostCluster.DataDirectory(1)}/wal";
        cluster.Disk.BeforeEntering = (kind, path) =>
        {
            if (kind == FaultOperationKind.Flush && path.StartsWith(wal, StringComparison.Ordinal))
            {
                hold.Block();
            }
        };
        var first = cluster[1].ProposeAsync(Bytes("first")).AsTask();
        await hold.Entered.WaitAsync(Waits.Limit);
        var calls = Enumerable.Range(0, Callers).Select(i => cluster[1].ProposeAsync(Bytes($"c{i}")).AsTask()).ToArray();
        var others = calls[1..];
        var blocking = calls[0].ContinueWith(
            _ => Task.WaitAll(others, Waits.Limit),
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
        hold.Release();

        Assert.That(await blocking.WaitAsync(Waits.Limit + Waits.Limit), Is.True, "every other caller of the batch completed while its first caller blocked, with no tick");
        await first.WaitAsync(Waits.Limit);
        Assert.That(cluster.Machines[1].Commands, Is.EqualTo(calls.Select((_, i) => $"c{i}").Prepend("first").Prepend("settle")), "each command applied once, in order");
    }

    [Test]
    public async Task ABatchsCommandsStayAsTheyWereUntilItsApplyCompletes()
    {
        // The node reuses a batch's command list for the next batch (CommittedBatch.Commands): it
        // must not touch it while the state machine still applies, even with the next batches
        // committed and queued behind it.
        await using var cluster = await HostCluster.StartAsync(1, seed: 14);
        var applying = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var checkedBatches = 0;
        cluster.Machines[1].BeforeApply = async batch =>
        {
            var before = batch.Commands.ToArray();
            if (before.Any(c => Encoding.UTF8.GetString(c.Data.Span) == "hold"))
            {
                applying.TrySetResult();
                await gate.Task;
            }
            else
            {
                await Task.Yield();
            }

            Assert.That(batch.Commands.ToArray(), Is.EqualTo(before), "the batch's commands while its apply runs");
            Interlocked.Increment(ref checkedBatches);
        };

        var hold = cluster[1].ProposeAsync(Bytes("hold")).AsTask();
        await applying.Task.WaitAsync(Waits.Limit);
        var heldAt = cluster[1].Status.PersistedIndex;
        var calls = Enumerable.Range(0, 40).Select(i => cluster[1].ProposeAsync(Bytes($"c{i}")).AsTask()).ToList();

        // One node: durable is committed. The 40 are committed (and queued to the applier) before the held apply ends.
        await Waits.UntilAsync(() => cluster[1].Status.PersistedIndex >= heldAt + 40, "the 40 commands committed behind the held apply");

        gate.SetResult();
        calls.Add(hold);
        await Task.WhenAll(calls).WaitAsync(Waits.Limit);

        Assert.That(cluster.Machines[1].Commands, Is.EqualTo(Enumerable.Range(0, 40).Select(i => $"c{i}").Prepend("hold")), "each command applied once, in order");
        Assert.That(checkedBatches, Is.GreaterThan(1), "batches applied after the held one were checked too");
    }

    [Test]
    public async Task CommittedBatchesQueuedBehindARunningApplyAreAppliedTogetherInOrder()
    {
        // Ten commands, each committed in a Ready of its own while the apply before them is held:
        // once it ends they reach the state machine as one batch (one hand-off, not ten), each
        // applied once, in log order, and every caller answered with its own result.
        await using var cluster = await HostCluster.StartAsync(1, seed: 15);
        var batches = await HoldAnApplyAndCommitTenBehindItAsync(cluster);

        var afterHeld = batches[batches.FindIndex(b => b.Contains("hold")) + 1];
        // c9's batch may be queued just after the held apply ends; the nine before it are queued behind it.
        Assert.That(afterHeld, Has.Length.GreaterThanOrEqualTo(9), $"the batches queued behind the held apply were applied together (batches: {string.Join(" | ", batches.Select(b => string.Join(",", b)))})");
    }

    [Test]
    public async Task CommittedBatchesAppliedTogetherStayWithinMaxCommittedBytesPerReady()
    {
        // Each entry carries 19 bytes (a 17-byte envelope and a 2-byte command): a limit of 40 bytes
        // lets at most two of the ten queued batches be applied together.
        await using var cluster = await HostCluster.StartAsync(1, seed: 16, o => o with { Raft = o.Raft with { MaxCommittedBytesPerReady = 40 } });
        var batches = await HoldAnApplyAndCommitTenBehindItAsync(cluster);

        var behind = batches.Skip(batches.FindIndex(b => b.Contains("hold")) + 1).ToList();
        var shown = string.Join(" | ", batches.Select(b => string.Join(",", b)));
        Assert.That(behind, Has.All.Length.LessThanOrEqualTo(2), $"no apply went over the limit (batches: {shown})");
        Assert.That(behind[0], Has.Length.EqualTo(2), $"the first apply behind the held one took two batches (batches: {shown})");
    }

    // Records the commands of every apply of node 1, in order (lock the list to read it), and holds
    // the apply of the batch holding "hold": `applying` completes when it starts, `gate` lets it go.
    private static (List<string[]> Batches, TaskCompletionSource Applying, TaskCompletionSource Gate) RecordAppliesHoldingTheOneOfHold(HostCluster cluster)
    {
        var applying = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var batches = new List<string[]>();
        cluster.Machines[1].BeforeApply = async batch =>
        {
            var commands = batch.Commands.Select(c => Encoding.UTF8.GetString(c.Data.Span)).ToArray();
            lock (batches)
            {
                batches.Add(commands);
            }

            if (commands.Contains("hold"))
            {
                applying.TrySetResult();
                await gate.Task;
            }
        };
        return (batches, applying, gate);
    }

    // Holds the apply of a command "hold", commits ten commands c0..c9 one Ready each behind it, then
    // lets it go; checks every command applied once, in order, each caller answered with its own
    // result; returns the commands of every apply, in order.
    private static async Task<List<string[]>> HoldAnApplyAndCommitTenBehindItAsync(HostCluster cluster)
    {
        var (batches, applying, gate) = RecordAppliesHoldingTheOneOfHold(cluster);

        var hold = cluster[1].ProposeAsync(Bytes("hold")).AsTask();
        await applying.Task.WaitAsync(Waits.Limit);
        var heldAt = cluster[1].Status.PersistedIndex;
        var calls = new List<Task<long>>();
        for (var i = 0; i < 10; i++)
        {
            calls.Add(cluster[1].ProposeAsync(Bytes($"c{i}")).AsTask());
            var index = heldAt + (ulong)i + 1;
            await Waits.UntilAsync(() => cluster[1].Status.Raft.HardState.Commit >= index, $"c{i} committed in a Ready of its own");
        }

        gate.SetResult();
        var results = await Task.WhenAll(calls).WaitAsync(Waits.Limit);
        await hold.WaitAsync(Waits.Limit);

        Assert.That(cluster.Machines[1].Commands, Is.EqualTo(Enumerable.Range(0, 10).Select(i => $"c{i}").Prepend("hold")), "each command applied once, in order");
        Assert.That(results, Is.EqualTo(Enumerable.Range(2, 10).Select(i => (long)i)), "each caller got its own command's result");
        lock (batches)
        {
            return [.. batches];
        }
    }

    [Test]
    public async Task ACancellationDecidedFirstIsTheOutcomeEvenIfTheCommandApplies()
    {
        await using var cluster = await HostCluster.StartAsync(1, seed: 12);
        var applying = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        cluster.Machines[1].BeforeApply = async batch =>
        {
            if (batch.Commands.Any(c => Encoding.UTF8.GetString(c.Data.Span) == "held"))
            {
                applying.TrySetResult();
                await release.Task;
            }
        };

        using var cts = new CancellationTokenSource();
        var call = cluster[1].ProposeAsync(Bytes("held"), cts.Token).AsTask();
        await applying.Task.WaitAsync(Waits.Limit);
        cts.Cancel();
        release.SetResult();

        Assert.That(async () => await call.WaitAsync(Waits.Limit), Throws.InstanceOf<OperationCanceledException>(), "cancelled while its entry applied: the wait ends cancelled");
        var after = await cluster[1].ProposeAsync(Bytes("after")).AsTask().WaitAsync(Waits.Limit);
        Assert.That(after, Is.EqualTo(2L), "the cancelled command still applied (only the wait ended)");
        Assert.That(cluster.Machines[1].Commands, Is.EqualTo(new[] { "held", "after" }));
    }

    [Test]
    public async Task AForwardedProposalDeliveredTwiceIsAppliedOnce()
    {
        await using var cluster = await HostCluster.StartAsync(3, seed: 3);
        var leader = cluster.LeaderId();
        var follower = cluster.FollowerId();
        cluster.Network.SetLinkFaults(follower, leader, new LinkFaults { DuplicateRate = 1.0 });

        var results = new List<long>();
        for (var i = 0; i < 10; i++)
        {
            results.Add(await cluster[follower].ProposeAsync(Bytes($"dup-{i}")).AsTask().WaitAsync(Waits.Limit));
        }

        // A command after them on the leader, so every copy of the duplicates is behind it in the log.
        await cluster[leader].ProposeAsync(Bytes("after")).AsTask().WaitAsync(Waits.Limit);
        await cluster.WaitForAllAppliedAsync(cluster.Machines[leader].AppliedIndex);

        Assert.That(cluster.Network.DuplicatedMessages, Is.GreaterThan(0), "the network did duplicate the forwarded proposals");
        foreach (var machine in cluster.Machines.Values)
        {
            Assert.That(machine.Commands, Is.EqualTo(Enumerable.Range(0, 10).Select(i => $"dup-{i}").Append("after")));
        }

        Assert.That(results, Is.EqualTo(Enumerable.Range(1, 10).Select(i => (long)i)));
    }

    [Test]
    public async Task AProposalWithNoLeaderFailsWithNoLeaderException()
    {
        // One node of three: it can never win an election alone.
        await using var cluster = new HostCluster(seed: 4);
        var node = await cluster.StartNodeAsync(1, [1, 2, 3]);

        var error = Assert.ThrowsAsync<NoLeaderException>(async () => await node.ProposeAsync(Bytes("x")).AsTask().WaitAsync(Waits.Limit));

        Assert.That(error!.LastKnownLeader, Is.Zero);
        Assert.That(error.Message, Does.Contain("knows no leader"));
    }

    [Test]
    public async Task AForwardedProposalLostOnTheWayFailsWithinTheProposalTimeout()
    {
        await using var cluster = await HostCluster.StartAsync(3, seed: 5);
        var leader = cluster.LeaderId();
        var follower = cluster.FollowerId();

        // Everything from the follower to the leader is lost; the leader's heartbeats still arrive,
        // so the follower keeps forwarding to it.
        cluster.Network.SetLinkFaults(follower, leader, new LinkFaults { DropRate = 1.0 });
        var error = Assert.ThrowsAsync<ProposalDroppedException>(async () =>
            await cluster[follower].ProposeAsync(Bytes("lost")).AsTask().WaitAsync(Waits.Limit));

        Assert.That(error!.Reason, Is.EqualTo(ProposalDropReason.TimedOut));
        Assert.That(cluster.Machines[leader].Commands, Does.Not.Contain("lost"));
    }

    [Test]
    public async Task AProposalAppendedByALeaderThatLostLeadershipFailsAsOverwrittenWhenTheNewLeaderReplacesIt()
    {
        // A long proposal timeout: the overwrite, not the timeout, must end the call.
        await using var cluster = await HostCluster.StartAsync(3, seed: 8, o => o with { ProposalTimeout = TimeSpan.FromSeconds(30) });
        var oldLeader = cluster.LeaderId();
        var others = cluster.Nodes.Keys.Where(id => id != oldLeader).ToArray();

        cluster.Network.Isolate(oldLeader);
        var stranded = cluster[oldLeader].ProposeAsync(Bytes("stranded")).AsTask();
        using var cts = new CancellationTokenSource(Waits.Limit);
        var newLeader = await Task.WhenAny(others.Select(id => LeadsAsync(cluster[id], id, cts.Token))).Unwrap();
        await cluster[newLeader].ProposeAsync(Bytes("replacement")).AsTask().WaitAsync(Waits.Limit);
        cluster.Network.Heal();

        var error = Assert.ThrowsAsync<ProposalDroppedException>(async () => await stranded.WaitAsync(Waits.Limit));
        Assert.That(error!.Reason, Is.EqualTo(ProposalDropReason.Overwritten));
        await cluster[oldLeader].ReadIndexAsync().AsTask().WaitAsync(Waits.Limit);
        Assert.That(cluster.Machines[oldLeader].Commands, Is.EqualTo(new[] { "replacement" }));

        static async Task<ulong> LeadsAsync(RaftNode<long> node, ulong id, CancellationToken cancellationToken)
        {
            await foreach (var change in node.LeaderChanges(cancellationToken))
            {
                if (change.LeaderId == id)
                {
                    return id;
                }
            }

            return await Task.FromCanceled<ulong>(cancellationToken);
        }
    }

    [Test]
    public async Task CancellingAfterTheCommandReachedTheLogOnlyStopsTheWait()
    {
        await using var cluster = await HostCluster.StartAsync(1, seed: 6);
        var machine = cluster.Machines[1];
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        machine.BeforeApply = async batch =>
        {
            if (batch.Commands.Any(c => Encoding.UTF8.GetString(c.Data.Span) == "held"))
            {
                entered.TrySetResult();
                await release.Task;
            }
        };

        using var cts = new CancellationTokenSource();
        var call = cluster[1].ProposeAsync(Bytes("held"), cts.Token).AsTask();
        await entered.Task.WaitAsync(Waits.Limit);
        await cts.CancelAsync();

        Assert.That(async () => await call.WaitAsync(Waits.Limit), Throws.InstanceOf<OperationCanceledException>());
        release.SetResult();
        var next = await cluster[1].ProposeAsync(Bytes("next")).AsTask().WaitAsync(Waits.Limit);
        Assert.That(machine.Commands, Is.EqualTo(new[] { "held", "next" }), "the cancelled command was committed, so it applied");
        Assert.That(next, Is.EqualTo(2));
    }

    [Test]
    public async Task ARefusalByTheLeaderOfAForwardedRequestFailsTheCallerWithTheLeadersReason()
    {
        await using var cluster = await HostCluster.StartAsync(3, seed: 7);
        var follower = cluster.FollowerId();

        // Leaving a joint configuration when none is joint: the leader refuses it and sends the
        // refusal back to the follower, which fails its caller at once.
        var error = Assert.ThrowsAsync<ConfChangeRejectedException>(async () =>
            await cluster[follower].ChangeMembershipAsync(EmbeddedRaft.Consensus.Membership.ConfChange.LeaveJoint()).AsTask().WaitAsync(Waits.Limit));

        Assert.That(error!.Reason, Is.EqualTo(ConfChangeRejectReason.NotJoint));
    }

    [Test]
    public async Task AForwardedCommandTheLeaderRefusesDuringATransferFailsTheCallerWithTheLeadersReason()
    {
        // Long election timeouts keep the transfer (to a node that cannot hear the leader) in progress
        // for about two seconds; a long proposal timeout makes sure the refusal, not the timeout, ends the call.
        await using var cluster = await HostCluster.StartAsync(3, seed: 9, o => o with
        {
            Raft = o.Raft with { ElectionTimeoutTicks = 200 },
            ProposalTimeout = TimeSpan.FromSeconds(30),
        });
        var leader = cluster.LeaderId();
        var followers = cluster.Nodes.Keys.Where(id => id != leader).ToArray();
        var (proposer, target) = (followers[0], followers[1]);

        cluster.Network.Isolate(target);
        var transfer = cluster[leader].TransferLeadershipAsync(target).AsTask();
        var error = Assert.ThrowsAsync<ProposalDroppedException>(async () =>
            await cluster[proposer].ProposeAsync(Bytes("refused")).AsTask().WaitAsync(Waits.Limit));

        Assert.That(error!.Reason, Is.EqualTo(ProposalDropReason.LeadershipTransferInProgress));
        cluster.Network.Heal();
        try
        {
            await transfer.WaitAsync(Waits.Limit);
        }
        catch (Exception ex) when (ex is not TimeoutException)
        {
            // The transfer may fail once it is abandoned; only the refusal matters here.
        }

        var after = await cluster[proposer].ProposeAsync(Bytes("after")).AsTask().WaitAsync(Waits.Limit);
        Assert.That(cluster.Machines[proposer].Commands, Does.Not.Contain("refused"));
        Assert.That(cluster.Machines[proposer].Commands, Does.Contain("after"));
        Assert.That(after, Is.GreaterThan(0));
    }
}
