using EmbeddedRaft.Consensus.Core;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Tests.Support;
using EmbeddedRaft.Consensus.Tracking;
using static EmbeddedRaft.Consensus.Tests.Support.Fixtures;

namespace EmbeddedRaft.Consensus.Tests.Unit;

/// <summary>The Ready/Advance contract and the public surface of <see cref="RawNode"/>.</summary>
public class RawNodeTests
{
    private static readonly ulong[] s_three = [1, 2, 3];

    private static TestNode Follower()
    {
        var node = NodeWithLog(1, s_three, [E(1, 1, "a"), E(1, 2, "b")], new HardState(1, 0, 2));
        node.Core.BecomeFollower(1, 2);
        return node;
    }

    [Test]
    public void ASingleVoterElectsItselfAndCommitsOnlyAfterPersisting()
    {
        var storage = MemoryStorage.WithVoters(1);
        var node = new RawNode(TestNode.Seeded(1), storage);

        node.Campaign();
        var rd = node.GetReady();
        Assert.That(rd.HardState, Is.EqualTo(new HardState(1, 1, 0)));
        Assert.That(rd.MustSync, Is.True);
        Assert.That(node.SoftState.Role, Is.EqualTo(StateRole.Candidate), "its own vote counts only once persisted");
        storage.SetHardState(rd.HardState!.Value);
        node.Advance();
        Assert.That(node.SoftState.Role, Is.EqualTo(StateRole.Leader));

        rd = node.GetReady();
        Assert.That(Positions(rd.Entries.ToArray()), Is.EqualTo(new[] { (1UL, 1UL) }));
        Assert.That(rd.CommittedEntries.IsEmpty, Is.True, "the leader's own entry is not acknowledged before it is durable");
        storage.Append(rd.Entries.Span);
        node.Advance();

        rd = node.GetReady();
        Assert.That(Positions(rd.CommittedEntries.ToArray()), Is.EqualTo(new[] { (1UL, 1UL) }));
        Assert.That(rd.HardState?.Commit, Is.EqualTo(1));
        node.Advance();
        Assert.That(node.HasReady(), Is.False);
    }

    [Test]
    public void LeaderAppendsMaySendBeforePersistingButFollowerAcksMustWait()
    {
        var net = TestNetwork.OfSize(3);
        net.Campaign(1);
        var leader = net[1].Node;
        var follower = net[2].Node;

        leader.Propose("x"u8.ToArray());
        var rd = leader.GetReady();
        Assert.That(rd.Messages.Select(m => m.Type).Distinct(), Is.EqualTo(new[] { MessageType.Append }));
        Assert.That(rd.MessagesAfterPersist, Is.Empty);
        var append = rd.Messages.First(m => m.To == 2);
        net[1].Persist(rd);
        leader.Advance();

        follower.Step(append);
        var frd = follower.GetReady();
        Assert.That(frd.Messages, Is.Empty);
        Assert.That(frd.MessagesAfterPersist.Select(m => (m.Type, m.Index)), Is.EqualTo(new[] { (MessageType.AppendResponse, 2UL) }));
        Assert.That(frd.MustSync, Is.True);
    }

    [Test]
    public void WhileAReadyIsOutstandingAppendsGoOutAtOnceButAcknowledgementsWaitForItsWrite()
    {
        var net = TestNetwork.OfSize(3);
        net.Campaign(1);
        var leader = net[1].Node;
        var follower = net[2].Node;

        leader.Propose("x"u8.ToArray());
        var rd = leader.GetReady();
        var firstAppend = rd.Messages.First(m => m.To == 2);

        // The leader's write of "x" is in flight: "y", proposed meanwhile, is replicated at once.
        leader.Propose("y"u8.ToArray());
        // A copy: the list taken is the node's, reused by its next call.
        List<Message> early = [.. leader.TakeMessagesBeforePersist()];
        Assert.That(early.Select(m => (m.Type, m.To)), Is.EquivalentTo(new[] { (MessageType.Append, 2UL), (MessageType.Append, 3UL) }));
        Assert.That(early.SelectMany(m => m.Entries.ToArray()).Select(e => e.Index).Distinct(), Is.EqualTo(new[] { 3UL }));
        Assert.That(leader.TakeMessagesBeforePersist(), Is.Empty, "taken once");
        Assert.That(leader.Core.Log.Committed, Is.EqualTo(1UL), "nothing commits before the leader's own write is done");

        // A follower with a write in flight sends no acknowledgement early: it waits for the write.
        follower.Step(firstAppend);
        var frd = follower.GetReady();
        follower.Step(early.First(m => m.To == 2));
        Assert.That(follower.TakeMessagesBeforePersist(), Is.Empty, "an acknowledgement promises durable entries");
        net[2].Persist(frd);
        follower.Advance();
        var next = follower.GetReady();
        Assert.That(next.MessagesAfterPersist.Select(m => (m.Type, m.Index)), Is.EqualTo(new[] { (MessageType.AppendResponse, 3UL) }));

        // What was taken early is not handed out again.
        net[1].Persist(rd);
        leader.Advance();
        var leaderNext = leader.GetReady();
        Assert.That(leaderNext.Messages.Where(m => m.Type == MessageType.Append && m.Entries.Length > 0), Is.Empty);
        Assert.That(leaderNext.Entries.ToArray().Select(e => e.Index), Is.EqualTo(new[] { 3UL }), "the leader still persists what it sent early");
    }

    [Test]
    public void ASingleVoterAnswersReadsOnlyAfterCommittingAnEntryOfItsTerm()
    {
        var storage = MemoryStorage.WithVoters(1);
        storage.Append([E(1, 1, "a"), E(1, 2, "b")]);
        storage.SetHardState(new HardState(1, 1, 1));
        var node = new TestNode(TestNode.DefaultOptions(1), storage);
        node.Node.Campaign();
        var rd = node.Node.GetReady();
        node.Persist(rd);
        node.Node.Advance();
        Assert.That(node.Core.Role, Is.EqualTo(StateRole.Leader));

        node.Node.ReadIndex("r"u8.ToArray());
        Assert.That(node.Core.ReadStates, Is.Empty, "index 2 may be committed already; the persisted commit says 1");

        node.ReadMessages();
        Assert.That(node.ReadStates.Select(r => (r.Index, Text(new Entry(r.RequestContext)))), Is.EqualTo(new[] { (3UL, "r") }));
    }

    [Test]
    public void GetReadyTwiceWithoutAdvanceAndAdvanceWithoutReadyAreRefused()
    {
        var node = new RawNode(TestNode.Seeded(1), MemoryStorage.WithVoters(1));

        Assert.Throws<InvalidOperationException>(node.Advance);
        node.Campaign();
        node.GetReady();
        Assert.Throws<InvalidOperationException>(() => node.GetReady());
    }

    [Test]
    public void CommittedEntriesPerReadyAreLimitedByBytes()
    {
        var storage = MemoryStorage.WithVoters(1);
        var entries = Enumerable.Range(1, 10).Select(i => E(1, (ulong)i, "0123456789")).ToArray();
        storage.Append(entries);
        storage.SetHardState(new HardState(1, 1, 10));
        var node = new RawNode(TestNode.Seeded(1) with { MaxCommittedBytesPerReady = (ulong)(3 * entries[0].EncodedSizeBytes) }, storage);

        var batches = new List<int>();
        while (node.HasReady())
        {
            var rd = node.GetReady();
            batches.Add(rd.CommittedEntries.Length);
            node.Advance();
        }

        Assert.That(batches, Is.EqualTo(new[] { 3, 3, 3, 1 }));
    }

    // Session 20 (E17): a committed batch that spans two of the unstable log's chunks was read back
    // from the storage (a fresh entry array per batch on every member); it is now cut at the chunk's end.
    [Test]
    public void CommittedEntriesThatSpanTwoChunksAreHandedOutFromTheChunksWithoutReadingTheStorage()
    {
        var storage = new CountingStorage(MemoryStorage.WithVoters(1));
        var node = new RawNode(TestNode.Seeded(1), storage);
        node.Campaign();
        var rd = node.GetReady();
        storage.Inner.SetHardState(rd.HardState!.Value);
        node.Advance();

        // The leader's empty entry and 1,500 proposals, one entry per append: the first chunk
        // (1,024 entries) fills and the rest go on in a second one.
        for (var i = 0; i < 1500; i++)
        {
            node.Propose(System.Text.Encoding.UTF8.GetBytes($"p{i}"));
        }

        rd = node.GetReady();
        Assert.That(rd.Entries.Length, Is.EqualTo(1501));
        storage.Inner.Append(rd.Entries.Span);
        node.Advance();

        var batches = new List<int>();
        var applied = new List<ulong>();
        while (node.HasReady())
        {
            rd = node.GetReady();
            if (!rd.CommittedEntries.IsEmpty)
            {
                batches.Add(rd.CommittedEntries.Length);
                applied.AddRange(rd.CommittedEntries.ToArray().Select(e => e.Index));
            }

            if (rd.HardState is { } hard)
            {
                storage.Inner.SetHardState(hard);
            }

            node.Advance();
        }

        Assert.That(applied, Is.EqualTo(Enumerable.Range(1, 1501).Select(i => (ulong)i)), "every committed entry once, in order");
        Assert.That(batches, Is.EqualTo(new[] { UnstableLog.ChunkEntries, 1501 - UnstableLog.ChunkEntries }), "cut where the first chunk ends");
        Assert.That(storage.EntriesCalls, Is.Zero, "every committed entry came from the unstable log's chunks");
    }

    [Test]
    public void RestartWithAnAppliedIndexDoesNotHandOutAppliedEntriesAgain()
    {
        var storage = MemoryStorage.WithVoters(1);
        storage.Append(Enumerable.Range(1, 5).Select(i => E(1, (ulong)i)).ToArray());
        storage.SetHardState(new HardState(1, 1, 5));

        var node = new RawNode(TestNode.Seeded(1) with { AppliedIndex = 3 }, storage);

        var rd = node.GetReady();
        Assert.That(rd.CommittedEntries.ToArray().Select(e => e.Index), Is.EqualTo(new[] { 4UL, 5UL }));
        Assert.That(node.GetStatus().Applied, Is.EqualTo(3));
    }

    [Test]
    public void ATransferToTheLeaderItselfForwardedByAFollowerIsIgnored()
    {
        var net = TestNetwork.OfSize(3);
        net.Campaign(1);

        // Asked on node 2 to make node 1 leader: forwarded to node 1 with From = 1 (the transferee).
        net[2].Node.TransferLeadership(1);
        net.Deliver(net[2].ReadMessages());

        Assert.That(net[1].Core.Role, Is.EqualTo(StateRole.Leader));
        Assert.That(net[1].Core.LeadTransferee, Is.EqualTo(0));
        net.Propose(1, "still accepted");
        Assert.That(net[3].Applied.Select(Text), Does.Contain("still accepted"));
    }

    [Test]
    public void StatusReportsPeerProgressOnTheLeader()
    {
        var net = TestNetwork.OfSize(3);
        net.Campaign(1);
        net.Propose(1, "x");

        var status = net[1].Node.GetStatus();

        Assert.That(status.SoftState, Is.EqualTo(new SoftState(1, StateRole.Leader)));
        Assert.That(status.Progress.Keys.Order(), Is.EqualTo(s_three));
        Assert.That(status.Progress.Values.Select(p => (p.Match, p.State)).Distinct(), Is.EqualTo(new[] { (2UL, ProgressState.Replicate) }));
        Assert.That(net[2].Node.GetStatus().Progress, Is.Empty, "followers track no progress");
    }

    [Test]
    public void ALeaderWaitsWhileTheSnapshotIsTemporarilyUnavailableAndSendsItLater()
    {
        var storage = new FlakySnapshotStorage(MemoryStorage.WithVoters(s_three));
        var raw = new RawNode(TestNode.DefaultOptions(1), storage);
        var follower3 = TestNode.Create(3, s_three);
        var follower2 = TestNode.Create(2, s_three);

        // Elect 1 over the flaky storage, with only node 2 taking part.
        raw.Campaign();
        var pending = Drain(raw, storage.Inner);
        pending = Exchange(raw, storage.Inner, follower2, pending);
        raw.Propose("a"u8.ToArray());
        pending.AddRange(Drain(raw, storage.Inner));
        Exchange(raw, storage.Inner, follower2, pending);
        storage.Inner.CreateSnapshot(2, new ConfState(s_three));
        storage.Inner.Compact(2);

        // Node 3 shows up needing compacted entries while the snapshot is not ready.
        storage.Unavailable = true;
        raw.Step(new Message { Type = MessageType.HeartbeatResponse, From = 3, To = 1, Term = 1 });
        raw.Step(new Message { Type = MessageType.AppendResponse, From = 3, To = 1, Term = 1, Index = 0, Reject = true, RejectHint = 0 });
        var sent = Drain(raw, storage.Inner);
        Assert.That(sent.Where(m => m.To == 3 && m.Type == MessageType.Snapshot), Is.Empty);
        Assert.That(raw.GetStatus().Progress[3].State, Is.EqualTo(ProgressState.Probe));

        storage.Unavailable = false;
        raw.Step(new Message { Type = MessageType.HeartbeatResponse, From = 3, To = 1, Term = 1 });
        var snapshot = Drain(raw, storage.Inner).Single(m => m.To == 3 && m.Type == MessageType.Snapshot);
        Assert.That(raw.GetStatus().Progress[3].State, Is.EqualTo(ProgressState.Snapshot));
        Assert.That(raw.GetStatus().Progress[3].PendingSnapshot, Is.EqualTo(2));

        follower3.Step(snapshot);
        var responses = follower3.ReadMessages();
        Assert.That(follower3.Core.Log.Committed, Is.EqualTo(2));
        raw.ReportSnapshot(3, succeeded: true);
        foreach (var m in responses)
        {
            raw.Step(m);
        }

        Drain(raw, storage.Inner);
        Assert.That(raw.GetStatus().Progress[3].State, Is.EqualTo(ProgressState.Replicate));
    }

    private static List<Message> Drain(RawNode node, MemoryStorage storage)
    {
        var messages = new List<Message>();
        while (node.HasReady())
        {
            var rd = node.GetReady();
            messages.AddRange(rd.Messages);
            storage.Append(rd.Entries.Span);
            if (rd.HardState is { } hs)
            {
                storage.SetHardState(hs);
            }

            messages.AddRange(rd.MessagesAfterPersist);
            node.Advance();
        }

        return messages;
    }

    private static List<Message> Exchange(RawNode leader, MemoryStorage storage, TestNode follower, List<Message> toSend)
    {
        var leftover = new List<Message>();
        var queue = new Queue<Message>(toSend);
        while (queue.TryDequeue(out var m))
        {
            if (m.To != follower.Id)
            {
                leftover.Add(m);
                continue;
            }

            follower.Step(m);
            foreach (var response in follower.ReadMessages())
            {
                leader.Step(response);
                foreach (var next in Drain(leader, storage))
                {
                    queue.Enqueue(next);
                }
            }
        }

        return leftover;
    }

    private sealed class FlakySnapshotStorage(MemoryStorage inner) : IRaftStorage
    {
        public MemoryStorage Inner { get; } = inner;

        public bool Unavailable { get; set; }

        public (HardState HardState, ConfState ConfState) InitialState() => Inner.InitialState();

        public ReadOnlyMemory<Entry> Entries(ulong low, ulong high, ulong maxSizeBytes) => Inner.Entries(low, high, maxSizeBytes);

        public ulong Term(ulong index) => Inner.Term(index);

        public ulong LastIndex() => Inner.LastIndex();

        public ulong FirstIndex() => Inner.FirstIndex();

        public SnapshotMetadata Snapshot() => Unavailable ? throw new SnapshotTemporarilyUnavailableException() : Inner.Snapshot();
    }

    // Guards the Raft core review's finding 4: snapshots are synced; heartbeats clamp.
    [Test]
    public void ASnapshotOnlyReadyMustBeSyncedBecauseItsAcknowledgementPromisesDurability()
    {
        var node = Follower();
        node.Step(new Message
        {
            Type = MessageType.Snapshot, From = 2, To = 1, Term = 1,
            Snapshot = new SnapshotMetadata(10, 1, new ConfState(s_three)),
        });

        var rd = node.Node.GetReady();
        Assert.That((rd.Snapshot is not null, rd.Entries.IsEmpty, rd.MessagesAfterPersist.Single().Index), Is.EqualTo((true, true, 10UL)));
        Assert.That(rd.MustSync, Is.True);
    }

    // Guards the Raft core review's finding 9: a failed Advance does not replay.
    [Test]
    public void AnAdvanceThatThrowsDoesNotReplayItsMessagesOnTheNextAdvance()
    {
        var storage = new FailingLastIndexStorage(MemoryStorage.WithVoters(s_three));
        var raw = new RawNode(TestNode.DefaultOptions(1), storage);
        raw.Campaign();
        HandleAll(raw, storage.Inner);
        raw.Step(new Message { Type = MessageType.VoteResponse, From = 2, To = 1, Term = 1 });
        HandleAll(raw, storage.Inner);
        Assert.That(raw.SoftState.Role, Is.EqualTo(StateRole.Leader));

        // The leader's own acknowledgement is stepped on Advance, and the storage fails under it.
        raw.Propose("x"u8.ToArray());
        Persist(raw.GetReady(), storage.Inner);
        storage.Failing = true;
        Assert.Throws<IOException>(raw.Advance);

        // The next cycle (heartbeats only) must not step the failed acknowledgement again.
        raw.Tick();
        Assert.That(raw.HasReady(), Is.True);
        Persist(raw.GetReady(), storage.Inner);
        Assert.DoesNotThrow(raw.Advance);
    }

    // Guards the Raft core review's finding 9: a failed Advance does not replay.
    private static List<Message> HandleAll(RawNode raw, MemoryStorage storage)
    {
        var sent = new List<Message>();
        while (raw.HasReady())
        {
            var rd = raw.GetReady();
            Persist(rd, storage);
            sent.AddRange(rd.Messages);
            sent.AddRange(rd.MessagesAfterPersist);
            raw.Advance();
        }

        return sent;
    }

    // Guards the Raft core review's finding 9: a failed Advance does not replay.
    private static void Persist(Ready rd, MemoryStorage storage)
    {
        if (rd.Snapshot is { } snapshot)
        {
            storage.ApplySnapshot(snapshot);
        }

        storage.Append(rd.Entries.Span);
        if (rd.HardState is { } hs)
        {
            storage.SetHardState(hs);
        }
    }

    // Guards the Raft core review's finding 10: HasReady agrees with GetReady.
    [Test]
    public void HasReadyIsFalseWhileAReadyIsOutstanding()
    {
        var leader = TestNode.Create(1, s_three);
        BecomeLeaderWithCommittedNoop(leader);
        leader.Node.Tick();
        Assert.That(leader.Node.HasReady(), Is.True);
        var rd = leader.Node.GetReady();

        leader.Node.Tick();
        Assert.That(leader.Node.HasReady(), Is.False, "GetReady would throw now");

        leader.Persist(rd);
        leader.Node.Advance();
        Assert.That(leader.Node.HasReady(), Is.True, "the second heartbeats are handed out after Advance");
    }

    // Guards the Raft core review's finding 12: Next while a snapshot is in flight.
    [Test]
    public void AFollowerBeingSentASnapshotReportsNextJustPastTheSnapshot()
    {
        var net = TestNetwork.OfSize(3);
        net.Campaign(1);
        net.Isolate(3);
        net.Propose(1, "x");
        net.Propose(1, "y");
        var n1 = net[1];
        var snapshotIndex = n1.AppliedIndex;
        n1.Storage.CreateSnapshot(snapshotIndex, null);
        n1.Storage.Compact(snapshotIndex);
        net.Recover();
        net.Ignore(MessageType.Snapshot);

        net.Tick(1);

        var progress = n1.Node.GetStatus().Progress[3];
        Assert.That((progress.State, progress.PendingSnapshot, progress.Next), Is.EqualTo((ProgressState.Snapshot, snapshotIndex, snapshotIndex + 1)));
    }

    /// <summary>A storage that counts the calls that read entries.</summary>
    private sealed class CountingStorage(MemoryStorage inner) : IRaftStorage
    {
        public MemoryStorage Inner => inner;

        public int EntriesCalls { get; private set; }

        public (HardState HardState, ConfState ConfState) InitialState() => inner.InitialState();

        public ReadOnlyMemory<Entry> Entries(ulong low, ulong high, ulong maxSizeBytes)
        {
            EntriesCalls++;
            return inner.Entries(low, high, maxSizeBytes);
        }

        public ulong Term(ulong index) => inner.Term(index);

        public ulong LastIndex() => inner.LastIndex();

        public ulong FirstIndex() => inner.FirstIndex();

        public SnapshotMetadata Snapshot() => inner.Snapshot();
    }

    /// <summary>A storage whose <see cref="LastIndex"/> fails while <see cref="Failing"/> is set (a disk error).</summary>
    private sealed class FailingLastIndexStorage(MemoryStorage inner) : IRaftStorage
    {
        public MemoryStorage Inner => inner;

        public bool Failing { get; set; }

        public (HardState HardState, ConfState ConfState) InitialState() => inner.InitialState();

        public ReadOnlyMemory<Entry> Entries(ulong low, ulong high, ulong maxSizeBytes) => inner.Entries(low, high, maxSizeBytes);

        public ulong Term(ulong index) => inner.Term(index);

        public ulong LastIndex() => Failing ? throw new IOException("disk failure") : inner.LastIndex();

        public ulong FirstIndex() => inner.FirstIndex();

        public SnapshotMetadata Snapshot() => inner.Snapshot();
    }
}
