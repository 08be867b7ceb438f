using System.Text;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>
/// The write pipeline of <see cref="RaftNode{TResult}"/>: the loop hands each Ready's records to the
/// log and goes on while a separate sync pipeline runs the fsync. What must still hold, with one
/// Ready in flight and with several: a node acknowledges entries only once its fsync of them is
/// done, a leader applies an entry only once it holds it durably, and meanwhile the loop keeps
/// working (a leader whose fsync hangs still commits through its followers). An fsync is held by
/// blocking the thread that flushes a node's write-ahead log (<see cref="PipelineCluster.HoldFlushesOf"/>).
/// And what arrives while a write is being made durable goes into one next Ready, written just
/// before the next fsync and covered by it, not one Ready per incoming append (counted with Raft's
/// ticks stopped, <see cref="PipelineCluster.StopTicksAsync"/>).
/// </summary>
public class RaftNodeWritePipelineTests
{
    [TestCase(1)]
    [TestCase(RaftNodeOptions.DefaultMaxReadiesInFlight)]
    public async Task AFollowerAcknowledgesEntriesOnlyOnceItsFsyncOfThemIsDone(int readiesInFlight)
    {
        await using var run = await PipelineCluster.StartAsync(seed: 1301 + readiesInFlight, readiesInFlight);
        var (leader, follower) = (run.Cluster.LeaderId(), run.Cluster.FollowerId());
        using var flush = run.HoldFlushesOf(follower);

        var proposal = run.Cluster[leader].ProposeAsync(Encoding.UTF8.GetBytes("held-on-follower")).AsTask();
        await flush.Entered.WaitAsync(Waits.Limit);
        var index = run.IndexOf(leader, "held-on-follower");

        Assert.That(run.AcknowledgedUpTo(follower), Is.LessThan(index), $"node {follower} acknowledged entry {index} before its fsync of it completed");

        flush.Release();
        await proposal.WaitAsync(Waits.Limit);
        await run.WaitUntilAcknowledgedAsync(follower, index);
    }

    [TestCase(1)]
    [TestCase(RaftNodeOptions.DefaultMaxReadiesInFlight)]
    public async Task ALeaderWhoseFsyncHangsStillCommitsThroughItsFollowersButAppliesOnlyOnceItIsDurable(int readiesInFlight)
    {
        await using var run = await PipelineCluster.StartAsync(seed: 1401 + readiesInFlight, readiesInFlight);
        var (leader, follower) = (run.Cluster.LeaderId(), run.Cluster.FollowerId());
        using var flush = run.HoldFlushesOf(leader);

        var proposal = run.Cluster[leader].ProposeAsync(Encoding.UTF8.GetBytes("held-on-leader")).AsTask();
        await flush.Entered.WaitAsync(Waits.Limit);
        var index = run.IndexOf(leader, "held-on-leader");

        // The followers' acknowledgements commit the entry while the leader's own fsync hangs: its
        // loop keeps stepping them and tells the followers, which apply it.
        await run.Cluster.Machines[follower].WaitForAppliedAsync(index).WaitAsync(Waits.Limit);
        Assert.That(run.Cluster.Machines[leader].AppliedIndex, Is.LessThan(index), "the leader applied an entry it does not hold durably");
        Assert.That(proposal.IsCompleted, Is.False, "the proposal returned before the leader applied it");

        flush.Release();
        Assert.That(await proposal.WaitAsync(Waits.Limit), Is.GreaterThan(0));
        Assert.That(run.Cluster.Machines[leader].AppliedIndex, Is.GreaterThanOrEqualTo(index));
    }

    [Test]
    public async Task ACommittedBatchAlreadyDurableAppliesWithoutWaitingForTheWriteOfTheBatchQueuedBehindIt()
    {
        // A follower's apply is held on "hold" while "durable" commits and is written there. Then the
        // follower misses "newer", which the others commit; once the link heals, the leader's append
        // brings "newer" and its commit in one message: one Ready whose committed batch waits for
        // that Ready's own write — held here. Both batches queue behind the held apply; "durable"
        // must apply when it ends, not wait with "newer" for a newer write than its own.
        await using var run = await PipelineCluster.StartAsync(seed: 1501, RaftNodeOptions.DefaultMaxReadiesInFlight);
        var (leader, follower) = (run.Cluster.LeaderId(), run.Cluster.FollowerId());
        var node = run.Cluster[follower];
        var machine = run.Cluster.Machines[follower];
        var applying = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        machine.BeforeApply = async batch =>
        {
            if (batch.Commands.Any(c => c.Data.Span.EndsWith("hold"u8)))
            {
                applying.TrySetResult();
                await gate.Task;
            }
        };

        try
        {
            await run.Cluster[leader].ProposeAsync(Encoding.UTF8.GetBytes("hold")).AsTask().WaitAsync(Waits.Limit);
            await applying.Task.WaitAsync(Waits.Limit);
            await run.Cluster[leader].ProposeAsync(Encoding.UTF8.GetBytes("durable")).AsTask().WaitAsync(Waits.Limit);
            var durableIndex = run.IndexOf(leader, "durable");
            await Waits.UntilAsync(
                () => node.Status.PersistedIndex >= durableIndex && node.QueuedApplies >= 2,
                "\"durable\" written on the follower and queued behind its held apply");

            run.Cluster.Network.Cut(leader, follower);
            await run.Cluster[leader].ProposeAsync(Encoding.UTF8.GetBytes("newer")).AsTask().WaitAsync(Waits.Limit);
            var newerIndex = run.IndexOf(leader, "newer");
            using var flush = run.HoldFlushesOf(follower);
            run.Cluster.Network.Heal();
            await flush.Entered.WaitAsync(Waits.Limit);
            await Waits.UntilAsync(() => node.QueuedApplies >= 3, "\"newer\" and its commit queued behind \"durable\" while the follower's write of it hangs");

            gate.SetResult();
            await Waits.UntilAsync(() => machine.AppliedIndex >= durableIndex, "\"durable\" applied while the follower's write of \"newer\" hangs");
            Assert.That(machine.AppliedIndex, Is.LessThan(newerIndex), "the follower applied an entry it does not hold durably");

            flush.Release();
            await machine.WaitForAppliedAsync(newerIndex).WaitAsync(Waits.Limit);
        }
        finally
        {
            gate.TrySetResult();
        }
    }

    [TestCase(1)]
    [TestCase(RaftNodeOptions.DefaultMaxReadiesInFlight)]
    public async Task AFollowerWhoseFsyncIsBusyGathersTheAppendsArrivingMeanwhileIntoOneWrite(int readiesInFlight)
    {
        const int Appends = 12;
        await using var run = await PipelineCluster.StartAsync(seed: 1501 + readiesInFlight, readiesInFlight);
        var (leader, follower) = (run.Cluster.LeaderId(), run.Cluster.FollowerId());

        // Raft's time stands still from here: every append the follower receives is one of these
        // proposals' (or a commit they advanced). With ticks running, each heartbeat the behind
        // follower answers makes the leader send it one more (empty) append, and on a loaded machine
        // the gaps between its fsyncs span heartbeats: acknowledgements counted by the clock.
        using var ticksStopped = await run.StopTicksAsync();
        using var flush = run.HoldFlushesOf(follower);

        var first = run.Cluster[leader].ProposeAsync(Encoding.UTF8.GetBytes("gather-0")).AsTask();
        await flush.Entered.WaitAsync(Waits.Limit);
        var writtenBefore = run.Cluster[follower].ReadiesWritten;
        var acknowledgedBefore = run.AcknowledgementsSent(follower);

        // One proposal after another: the leader and the third node commit each (the leader applies
        // it once its own fsync is done), so each reaches the busy follower as an append of its own.
        for (var i = 1; i <= Appends; i++)
        {
            await run.Cluster[leader].ProposeAsync(Encoding.UTF8.GetBytes($"gather-{i}")).AsTask().WaitAsync(Waits.Limit);
        }

        var last = run.IndexOf(leader, $"gather-{Appends}");
        flush.Release();
        await first.WaitAsync(Waits.Limit);
        await run.WaitUntilAcknowledgedAsync(follower, last);
        await run.Cluster.Machines[follower].WaitForAppliedAsync(last).WaitAsync(Waits.Limit);

        // At most: one Ready waiting while the held fsync ran, one taken as that one's fsync started
        // with everything that had arrived, and one for a straggler stepped after it. Without
        // coalescing a follower takes a Ready per append (up to the pipeline depth while one waits).
        var written = run.Cluster[follower].ReadiesWritten - writtenBefore;
        Assert.That(written, Is.LessThanOrEqualTo(3), $"node {follower} wrote {written} Readies for {Appends} appends that arrived while its fsync was busy");

        // And answered them likewise: one acknowledgement per fsync, the last of those its writes
        // owed (the core owes one per append), not one per append.
        var acknowledged = run.AcknowledgementsSent(follower) - acknowledgedBefore;
        Assert.That(acknowledged, Is.LessThanOrEqualTo(3), $"node {follower} sent {acknowledged} acknowledgements for {Appends + 1} appends gathered behind its busy fsync");
        Assert.That(run.Cluster.Machines[follower].Commands.TakeLast(Appends + 1), Is.EqualTo(Enumerable.Range(0, Appends + 1).Select(i => $"gather-{i}")));
    }
    [Test]
    public async Task ALeaderWhoseFsyncIsBusyWritesWhatIsProposedMeanwhileAsOneReadyThatTheNextFsyncCovers()
    {
        const int Proposals = 8;
        await using var run = await PipelineCluster.StartAsync(seed: 1601, RaftNodeOptions.DefaultMaxReadiesInFlight);
        var leader = run.Cluster.LeaderId();
        using var ticksStopped = await run.StopTicksAsync();
        using var flush = run.HoldFlushesOf(leader);

        var first = run.Cluster[leader].ProposeAsync(Encoding.UTF8.GetBytes("busy-0")).AsTask();
        await flush.Entered.WaitAsync(Waits.Limit);
        var writtenBefore = run.Cluster[leader].ReadiesWritten;

        // One proposal after another while the leader's fsync runs: each is in its core (its append
        // sent to the followers, who commit it) before the next is made.
        var proposals = new List<Task<long>> { first };
        for (var i = 1; i <= Proposals; i++)
        {
            var proposal = run.Cluster[leader].ProposeAsync(Encoding.UTF8.GetBytes($"busy-{i}")).AsTask();
            proposals.Add(proposal);
            await run.WaitForIndexOfAsync(leader, $"busy-{i}");
        }

        // And the followers' acknowledgements of all of them are in the leader's core before the
        // release (it has told its followers the commit): what is counted below is how the leader
        // writes what was proposed, not when the acknowledgements arrive. One still on its way when
        // the fsync returns advances the commit after the release, in a Ready of its own (a commit
        // index to write) — a third Ready on a loaded machine that has nothing to do with gathering.
        await run.WaitUntilCommitSentAsync(leader, run.IndexOf(leader, $"busy-{Proposals}"));

        // Nothing of it is written while the running write is being made durable: a Ready written
        // now would wait for that fsync anyway, and what came after it would miss the next one.
        Assert.That(run.Cluster[leader].ReadiesWritten - writtenBefore, Is.Zero, $"node {leader} wrote Readies while its fsync was held");

        // From here, count the leader's flushes until every proposal is applied: everything proposed
        // during the held fsync rides the first one after it (one write, one fsync), not the second.
        var flushes = 0;
        var wal = $"{HostCluster.DataDirectory(leader)}/wal";
        run.Disk(leader).BeforeEntering = (kind, path) =>
        {
            if (kind == FaultOperationKind.Flush && path.StartsWith(wal, StringComparison.Ordinal))
            {
                Interlocked.Increment(ref flushes);
            }
        };
        flush.Release();
        await Task.WhenAll(proposals).WaitAsync(Waits.Limit);
        Assert.That(Volatile.Read(ref flushes), Is.EqualTo(1), $"node {leader}'s entries proposed during a held fsync took {flushes} more fsyncs to become durable");
        Assert.That(run.Cluster[leader].ReadiesWritten - writtenBefore, Is.LessThanOrEqualTo(2), $"node {leader} wrote the proposals made during a held fsync in more than one Ready (and a commit)");
    }

    [Test]
    public async Task AFollowerWhoseFsyncIsBusyWritesANewTermAndVoteAtOnceButAnswersTheVoteOnlyAfterItsFsync()
    {
        await using var run = await PipelineCluster.StartAsync(seed: 1701, RaftNodeOptions.DefaultMaxReadiesInFlight);
        var leader = run.Cluster.LeaderId();
        var follower = run.Cluster.FollowerId();
        var target = run.Cluster.Nodes.Keys.First(id => id != leader && id != follower);
        using var flush = run.HoldFlushesOf(follower);

        var proposal = run.Cluster[leader].ProposeAsync(Encoding.UTF8.GetBytes("before-transfer")).AsTask();
        await flush.Entered.WaitAsync(Waits.Limit);
        var writtenBefore = run.Cluster[follower].ReadiesWritten;
        var termBefore = run.Cluster[follower].Status.Raft.HardState.Term;

        // The third node campaigns (a transfer: no election timeout); the old leader's vote elects it.
        await run.Cluster[leader].TransferLeadershipAsync(target).AsTask().WaitAsync(Waits.Limit);

        // The busy follower steps the vote request: its new term (and vote) is written while its
        // running write is still being made durable, not held back until that write's report (an
        // election would otherwise wait one fsync more on every busy voter).
        await Waits.UntilAsync(
            () => run.Cluster[follower].ReadiesWritten > writtenBefore && run.Cluster[follower].Status.Raft.HardState.Term > termBefore,
            $"node {follower} writing the new term while its fsync is held");

        // Raft Figure 2: the vote itself goes out only after the fsync that covers it.
        Assert.That(run.Sent(follower).Sent.Where(m => m.Type == MessageType.VoteResponse && m.Term > termBefore), Is.Empty, $"node {follower} answered a vote before its fsync of it");

        flush.Release();
        await proposal.WaitAsync(Waits.Limit);
    }
}
