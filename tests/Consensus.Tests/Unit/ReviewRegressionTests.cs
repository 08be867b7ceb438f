using EmbeddedRaft.Consensus.Core;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Tests.Support;
using EmbeddedRaft.Consensus.Tracking;
using static EmbeddedRaft.Consensus.Tests.Support.Fixtures;

namespace EmbeddedRaft.Consensus.Tests.Unit;

/// <summary>
/// Regression tests for the findings of the Raft core review: one section per finding, each
/// test reproducing the reviewer's scenario.
/// </summary>
public class ReviewRegressionTests
{
    private static readonly ulong[] s_three = [1, 2, 3];

    private static TestNode Follower()
    {
        var node = NodeWithLog(1, s_three, [E(1, 1, "a"), E(1, 2, "b")], new HardState(1, 0, 2));
        node.Core.BecomeFollower(1, 2);
        return node;
    }

    private static void AssertRejected(TestNode node, Message m)
    {
        var before = (node.Core.Term, node.Core.Vote, node.Core.Log.LastIndex(), node.Core.Log.Committed, node.Core.Role);
        var ex = Assert.Throws<MessageRejectedException>(() => node.Step(m));
        Assert.That(ex!.Reason, Is.EqualTo(MessageRejectReason.Malformed));
        Assert.That((node.Core.Term, node.Core.Vote, node.Core.Log.LastIndex(), node.Core.Log.Committed, node.Core.Role), Is.EqualTo(before), "state unchanged");
    }

    // ---------------------------------------------------------------- 1, 2: terms and indexes that overflow

    [Test]
    public void AHeartbeatWithTheLargestTermIsRejectedSoTheTermCannotWrapAndGrantASecondVote()
    {
        var node = NodeWithLog(1, s_three, [E(1, 1, "a")], new HardState(1, 0, 1));
        node.Step(new Message { Type = MessageType.Vote, From = 2, To = 1, Term = 5, Index = 1, LogTerm = 1 });
        Assert.That(node.ReadMessages().Single().Reject, Is.False, "voted for 2 in term 5");

        AssertRejected(node, new Message { Type = MessageType.Heartbeat, From = 2, To = 1, Term = ulong.MaxValue });
        node.Node.Campaign();
        node.ReadMessages();
        Assert.That(node.Core.Term, Is.EqualTo(6UL));

        node.Step(new Message { Type = MessageType.Vote, From = 3, To = 1, Term = 5, Index = 1, LogTerm = 1 });
        Assert.That(node.ReadMessages().Where(m => m.Type == MessageType.VoteResponse && !m.Reject), Is.Empty, "no second vote in term 5");
    }

    [TestCase(ulong.MaxValue)]
    [TestCase(ulong.MaxValue - 1)]
    [TestCase(RaftCore.MaxTermOrIndex + 1)]
    public void TermsAboveTheLimitAreRejected(ulong term) =>
        AssertRejected(Follower(), new Message { Type = MessageType.Heartbeat, From = 2, To = 1, Term = term });

    [Test]
    public void ATermAtTheLimitIsAcceptedAndCampaigningFromItDoesNotWrap()
    {
        var node = Follower();
        node.Step(new Message { Type = MessageType.Heartbeat, From = 2, To = 1, Term = RaftCore.MaxTermOrIndex, Commit = 2 });
        node.ReadMessages();
        node.Node.Campaign();
        node.ReadMessages();
        Assert.That(node.Core.Term, Is.EqualTo(RaftCore.MaxTermOrIndex + 1));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void CampaigningAtTheLargestTermThrowsInsteadOfWrappingToZero(bool preVote)
    {
        var options = TestNode.Seeded(1) with { PreVote = preVote };
        var node = NodeWithLog(1, s_three, [E(1, 1, "a")], new HardState(ulong.MaxValue, 0, 1), options);

        var ex = Assert.Throws<InvariantViolationException>(() => node.Node.Campaign());
        Assert.That(ex!.Message, Does.Contain("term"));
        Assert.That((node.Core.Term, node.Core.Role), Is.EqualTo((ulong.MaxValue, StateRole.Follower)), "nothing changed");
    }

    [Test]
    public void ASnapshotAtTheLargestIndexIsRejected() =>
        AssertRejected(Follower(), new Message
        {
            Type = MessageType.Snapshot, From = 2, To = 1, Term = 2,
            Snapshot = new SnapshotMetadata(ulong.MaxValue, 2, new ConfState(s_three)),
        });

    [Test]
    public void ASnapshotWhoseTermOverflowsIsRejected() =>
        AssertRejected(Follower(), new Message
        {
            Type = MessageType.Snapshot, From = 2, To = 1, Term = 2,
            Snapshot = new SnapshotMetadata(RaftCore.MaxTermOrIndex + 1, 2, new ConfState(s_three)),
        });

    [Test]
    public void AppendsWhoseIndexesPassTheLimitAreRejected()
    {
        AssertRejected(Follower(), new Message { Type = MessageType.Append, From = 2, To = 1, Term = 2, Index = ulong.MaxValue, LogTerm = 2 });
        AssertRejected(Follower(), new Message { Type = MessageType.Append, From = 2, To = 1, Term = 2, Index = RaftCore.MaxTermOrIndex, LogTerm = 2, Entries = new[] { E(2, RaftCore.MaxTermOrIndex + 1) } });
        AssertRejected(Follower(), new Message { Type = MessageType.Append, From = 2, To = 1, Term = 2, Index = 2, LogTerm = 1, Commit = ulong.MaxValue });
        AssertRejected(Follower(), new Message { Type = MessageType.Heartbeat, From = 2, To = 1, Term = 2, Commit = ulong.MaxValue });
        AssertRejected(Follower(), new Message { Type = MessageType.Vote, From = 2, To = 1, Term = 2, Index = ulong.MaxValue, LogTerm = 1 });
    }

    [Test]
    public void RejectionHintsPastTheLimitAreRejectedByTheLeader()
    {
        var leader = TestNode.Create(1, s_three);
        BecomeLeaderWithCommittedNoop(leader);

        AssertRejected(leader, new Message { Type = MessageType.AppendResponse, From = 2, To = 1, Term = 1, Index = 1, Reject = true, RejectHint = ulong.MaxValue });
        AssertRejected(leader, new Message { Type = MessageType.AppendResponse, From = 2, To = 1, Term = 1, Index = 1, Reject = true, RejectHint = 0, LogTerm = ulong.MaxValue });
    }

    // ---------------------------------------------------------------- 5: messages addressed to another node

    [Test]
    public void AMisroutedHeartbeatIsRejectedAndCommitsNoDivergentEntry()
    {
        // Node 1 holds divergent term-1 entries at 3..4; leader 2 of term 2 tells node 3 (which
        // matched its own entries at 3..4) to commit 4, and the transport delivers it to node 1.
        var node = NodeWithLog(1, s_three, [E(1, 1, "a"), E(1, 2, "b"), E(1, 3, "stale"), E(1, 4, "stale")], new HardState(2, 0, 2));
        node.Core.BecomeFollower(2, 2);

        AssertRejected(node, new Message { Type = MessageType.Heartbeat, From = 2, To = 3, Term = 2, Commit = 4 });
        Assert.That(node.Core.Log.Committed, Is.EqualTo(2UL));
    }

    [Test]
    public void MessagesWithoutARecipientAreRejected() =>
        AssertRejected(Follower(), new Message { Type = MessageType.Append, From = 2, Term = 1, Index = 2, LogTerm = 1 });

    // ---------------------------------------------------------------- 3: restart with an unsynced commit index

    [Test]
    public void ANodeRestartsWhenItAppliedEntriesBeyondItsLastSyncedCommitIndex()
    {
        var net = TestNetwork.OfSize(3);
        net.Campaign(1);
        var n1 = net[1];
        var synced = n1.Storage.InitialState().HardState;
        net.Propose(1, "x");
        net.Propose(1, "y");
        var applied = n1.AppliedIndex;
        Assert.That(synced.Commit, Is.LessThan(applied));

        // Crash: the commit-only hard-state writes (MustSync false) were never synced.
        n1.Storage.SetHardState(synced);
        n1.Restart(keepApplied: true);

        Assert.That(n1.Core.Log.Committed, Is.EqualTo(applied), "applied entries are committed");
        net.Campaign(1);
        net.Propose(1, "z");
        Assert.That(n1.Applied.Select(Text).Where(t => t.Length > 0), Is.EqualTo(new[] { "x", "y", "z" }), "nothing applied twice");
    }

    [Test]
    public void ANodeRestartsAfterCompactingBeyondItsLastSyncedCommitIndex()
    {
        var net = TestNetwork.OfSize(3);
        net.Campaign(1);
        var n1 = net[1];
        var synced = n1.Storage.InitialState().HardState;
        net.Propose(1, "x");
        net.Propose(1, "y");
        var applied = n1.AppliedIndex;
        n1.Storage.CreateSnapshot(applied, null);
        n1.Storage.Compact(applied);
        n1.Storage.SetHardState(synced);

        n1.Restart(keepApplied: false);

        Assert.That(n1.Core.Log.Committed, Is.EqualTo(applied), "a snapshot covers only committed entries");
        net.Campaign(1);
        net.Propose(1, "z");
        Assert.That(Text(n1.Applied[^1]), Is.EqualTo("z"));
    }

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

    // ---------------------------------------------------------------- 4: snapshots are synced; heartbeats clamp

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

    [Test]
    public void AHeartbeatCommittingBeyondTheFollowersLogCommitsUpToItsLastIndex()
    {
        var node = NodeWithLog(1, s_three, [E(1, 1, "a"), E(1, 2, "b"), E(1, 3, "c")], new HardState(1, 0, 1));
        node.Core.BecomeFollower(1, 2);

        node.Step(new Message { Type = MessageType.Heartbeat, From = 2, To = 1, Term = 1, Commit = 99 });

        Assert.That(node.Core.Log.Committed, Is.EqualTo(3UL));
        Assert.That(node.ReadMessages().Single().Type, Is.EqualTo(MessageType.HeartbeatResponse));
    }

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

    // ---------------------------------------------------------------- 6: transfers do not postpone CheckQuorum

    [Test]
    public void RepeatedTransferRequestsDoNotKeepAPartitionedLeaderServingLeaseReads()
    {
        var net = TestNetwork.OfSize(3, id => TestNode.Seeded(id) with { CheckQuorum = true, ReadOnlyMode = ReadOnlyMode.LeaseBased, MaxSizePerMessageBytes = ulong.MaxValue });
        net.Campaign(1);
        net.Isolate(1);

        for (var tick = 0; tick < 30; tick++)
        {
            if (tick % 5 == 0)
            {
                // A transfer request arrives every half election timeout, each to another target.
                net[1].Step(new Message { Type = MessageType.TransferLeader, From = tick % 10 == 0 ? 2UL : 3UL, To = 1, Term = net[1].Core.Term });
                net[1].ReadMessages();
            }

            net.Tick(1);
        }

        Assert.That(net[1].Core.Role, Is.EqualTo(StateRole.Follower), "CheckQuorum deposed the partitioned leader");
        net[1].Node.ReadIndex("read"u8.ToArray());
        net[1].ReadMessages();
        Assert.That(net[1].ReadStates, Is.Empty, "no lease read from a deposed leader");
    }

    [Test]
    public void ATransferIsStillAbandonedAfterOneElectionTimeout()
    {
        var net = TestNetwork.OfSize(3);
        net.Campaign(1);
        net.Isolate(2);
        net[1].Node.TransferLeadership(2);
        net[1].ReadMessages();
        for (var tick = 0; tick < 9; tick++)
        {
            net.Tick(1);
        }

        Assert.That(net[1].Core.LeadTransferee, Is.EqualTo(2UL));
        net.Tick(1);
        Assert.That(net[1].Core.LeadTransferee, Is.EqualTo(0UL));
    }

    // ---------------------------------------------------------------- 7: re-forwarded read requests

    [Test]
    public void AReadIndexForwardedThroughAFormerLeaderIsAnsweredToTheOriginalRequester()
    {
        var net = TestNetwork.OfSize(3);
        net.Campaign(1);
        net.Isolate(3);
        net.Campaign(2);
        net.Recover();

        // Node 3 still believes 1 leads; 1 follows 2 and passes the request on.
        Assert.That(net[3].Core.Lead, Is.EqualTo(1UL));
        net[3].Node.ReadIndex("ctx"u8.ToArray());
        var forwarded = net[3].ReadMessages();
        Assert.That(forwarded.Single().To, Is.EqualTo(1UL));
        net.Deliver(forwarded);

        Assert.That(net[3].ReadStates.Select(r => System.Text.Encoding.UTF8.GetString(r.RequestContext.Span)), Is.EqualTo(new[] { "ctx" }));
        Assert.That(net[1].ReadStates, Is.Empty);
    }

    [Test]
    public void AReadIndexForwardedBackToItsRequesterNowLeadingIsAnsweredLocally()
    {
        var net = TestNetwork.OfSize(3);
        net.Campaign(1);
        net[2].Node.ReadIndex("ctx"u8.ToArray());
        var toOldLeader = net[2].ReadMessages();
        net.Campaign(2);

        net.Deliver(toOldLeader);

        Assert.That(net[2].ReadStates.Select(r => System.Text.Encoding.UTF8.GetString(r.RequestContext.Span)), Is.EqualTo(new[] { "ctx" }));
    }

    // ---------------------------------------------------------------- 8: election timeout bound

    [Test]
    public void ElectionTimeoutsWhoseDoubleOverflowsAreRefused()
    {
        Assert.That(
            () => new RaftOptions(1) { ElectionTimeoutTicks = RaftOptions.MaxElectionTimeoutTicks + 1 },
            Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("ElectionTimeoutTicks"));
        Assert.That(
            () => new RaftOptions(1) { ElectionTimeoutTicks = int.MaxValue },
            Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("ElectionTimeoutTicks"));
    }

    [Test]
    public void TheLargestElectionTimeoutDrawsARandomizedTimeoutInRange()
    {
        var node = new RawNode(TestNode.Seeded(1) with { ElectionTimeoutTicks = RaftOptions.MaxElectionTimeoutTicks }, MemoryStorage.WithVoters(s_three));
        Assert.That(node.Core.RandomizedElectionTimeout, Is.InRange(RaftOptions.MaxElectionTimeoutTicks, int.MaxValue));
        node.Tick();
        Assert.That(node.SoftState.Role, Is.EqualTo(StateRole.Follower));
    }

    // ---------------------------------------------------------------- 9: a failed Advance does not replay

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

    // ---------------------------------------------------------------- 10: HasReady agrees with GetReady

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

    // ---------------------------------------------------------------- 11: compaction never passes the snapshot

    [Test]
    public void CompactingPastTheSnapshotIsRefusedSoTheLeaderNeverSendsAUselessSnapshot()
    {
        var storage = MemoryStorage.WithVoters(s_three);
        storage.Append([E(1, 1), E(1, 2), E(1, 3)]);
        storage.CreateSnapshot(1, null);

        Assert.That(() => storage.Compact(2), Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("snapshot"));
        Assert.That(storage.FirstIndex(), Is.EqualTo(1UL), "nothing compacted");

        storage.Compact(1);
        Assert.That((storage.FirstIndex(), storage.Snapshot().Index), Is.EqualTo((2UL, 1UL)));
    }

    // ---------------------------------------------------------------- 12: Next while a snapshot is in flight

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

    // ---------------------------------------------------------------- 13: inflight bytes against the message size

    [Test]
    public void AnInflightByteLimitBelowTheMessageSizeIsRefusedNamingBothOptions()
    {
        var options = TestNode.Seeded(1) with { MaxSizePerMessageBytes = 1000, MaxInflightBytes = 999 };
        Assert.That(
            options.Validate,
            Throws.ArgumentException.With.Property("ParamName").EqualTo("MaxInflightBytes")
                .And.Message.Contains("MaxSizePerMessageBytes"));

        Assert.DoesNotThrow(new RaftOptions(1) { MaxSizePerMessageBytes = 1000, MaxInflightBytes = 1000 }.Validate);
        Assert.DoesNotThrow(new RaftOptions(1) { MaxSizePerMessageBytes = 1000, MaxInflightBytes = 0 }.Validate);
    }

    // ---------------------------------------------------------------- 14: requests from unknown peers

    [Test]
    public void ANodeThatKnowsNoConfigurationYetStillFollowsALeaderItDoesNotKnow()
    {
        // A node added to a running cluster starts with an empty configuration: requests from
        // the leader are processed (etcd does the same), responses from strangers are not.
        var node = new TestNode(TestNode.DefaultOptions(4), new MemoryStorage());
        node.Step(new Message
        {
            Type = MessageType.Snapshot, From = 1, To = 4, Term = 3,
            Snapshot = new SnapshotMetadata(7, 2, new ConfState([1, 2, 3, 4])),
        });
        var ack = node.ReadMessages().Single();
        Assert.That((ack.Type, ack.To, ack.Index, node.Core.Lead), Is.EqualTo((MessageType.AppendResponse, 1UL, 7UL, 1UL)));

        var stranger = new TestNode(TestNode.DefaultOptions(4), new MemoryStorage());
        stranger.Step(new Message { Type = MessageType.Heartbeat, From = 1, To = 4, Term = 3 });
        Assert.That(stranger.ReadMessages().Single().Type, Is.EqualTo(MessageType.HeartbeatResponse));
        Assert.Throws<MessageRejectedException>(() => stranger.Step(new Message { Type = MessageType.HeartbeatResponse, From = 1, To = 4, Term = 3 }));
    }
}
