using EmbeddedRaft.Consensus.Core;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Tests.Support;
using static EmbeddedRaft.Consensus.Tests.Support.Fixtures;

namespace EmbeddedRaft.Consensus.Tests.Unit;

/// <summary>Nothing a peer sends may break an invariant: bad messages are refused, state untouched.</summary>
public class HostileMessageTests
{
    private static readonly ulong[] s_three = [1, 2, 3];

    private static TestNode Follower()
    {
        var node = NodeWithLog(1, s_three, [E(1, 1, "a"), E(1, 2, "b")], new HardState(1, 0, 2));
        node.Core.BecomeFollower(1, 2);
        return node;
    }

    private static void AssertRejected(TestNode node, Message m) => AssertRejected(node, m, MessageRejectReason.Malformed);

    private static void AssertRejected(TestNode node, Message m, MessageRejectReason reason)
    {
        var before = (node.Core.Term, node.Core.Vote, node.Core.Log.LastIndex(), node.Core.Log.Committed, node.Core.Role);
        var ex = Assert.Throws<MessageRejectedException>(() => node.Step(m));
        Assert.That(ex!.Reason, Is.EqualTo(reason));
        Assert.That((node.Core.Term, node.Core.Vote, node.Core.Log.LastIndex(), node.Core.Log.Committed, node.Core.Role), Is.EqualTo(before), "state unchanged");
    }

    [TestCase(MessageType.Hup)]
    [TestCase(MessageType.Beat)]
    [TestCase(MessageType.CheckQuorum)]
    [TestCase(MessageType.SnapshotStatus)]
    [TestCase(MessageType.Unreachable)]
    public void LocalMessageTypesFromTheNetworkAreRejected(MessageType type) =>
        AssertRejected(Follower(), new Message { Type = type, From = 2, To = 1, Term = 1 }, MessageRejectReason.LocalMessageType);

    [Test]
    public void ResponsesFromUnknownPeersAreRejected() =>
        AssertRejected(Follower(), new Message { Type = MessageType.AppendResponse, From = 9, To = 1, Term = 1 }, MessageRejectReason.UnknownPeer);

    [Test]
    public void AppendsOverlappingTheCommittedPrefixCannotRewriteIt()
    {
        var node = Follower();

        node.Step(new Message { Type = MessageType.Append, From = 2, To = 1, Term = 2, Index = 0, LogTerm = 0, Entries = new[] { E(2, 1, "evil") }, Commit = 1 });

        var response = node.ReadMessages().Single();
        Assert.That((response.Type, response.Index, response.Reject), Is.EqualTo((MessageType.AppendResponse, 2UL, false)), "answered with the commit index");
        Assert.That(Positions(node.LogEntries()), Is.EqualTo(new[] { (1UL, 1UL), (1UL, 2UL) }));
    }

    [Test]
    public void MessagesClaimingToComeFromTheNodeItselfAreRejected() =>
        AssertRejected(Follower(), new Message { Type = MessageType.Heartbeat, From = 1, To = 1, Term = 1 }, MessageRejectReason.Malformed);

    [Test]
    public void AppendsWithNonContiguousEntriesAreRejected() =>
        AssertRejected(Follower(), new Message { Type = MessageType.Append, From = 2, To = 1, Term = 1, Index = 2, LogTerm = 1, Entries = new[] { E(1, 4) } }, MessageRejectReason.Malformed);

    [Test]
    public void AppendsWithEntriesFromAFutureTermAreRejected() =>
        AssertRejected(Follower(), new Message { Type = MessageType.Append, From = 2, To = 1, Term = 1, Index = 2, LogTerm = 1, Entries = new[] { E(5, 3) } }, MessageRejectReason.Malformed);

    [Test]
    public void MessagesWithoutTermOrSenderAreRejected()
    {
        AssertRejected(Follower(), new Message { Type = MessageType.Append, From = 2, To = 1, Term = 0 }, MessageRejectReason.Malformed);
        AssertRejected(Follower(), new Message { Type = MessageType.Vote, From = 0, To = 1, Term = 3 }, MessageRejectReason.Malformed);
    }

    [Test]
    public void SnapshotMessagesWithoutASnapshotAreRejected() =>
        AssertRejected(Follower(), new Message { Type = MessageType.Snapshot, From = 2, To = 1, Term = 1 }, MessageRejectReason.Malformed);

    [Test]
    public void SnapshotsWithAContradictoryConfigurationAreRejected() =>
        AssertRejected(
            Follower(),
            new Message
            {
                Type = MessageType.Snapshot, From = 2, To = 1, Term = 2,
                Snapshot = new SnapshotMetadata(9, 2, new ConfState([1, 2, 3], learners: [2])),
            },
            MessageRejectReason.Malformed);

    [Test]
    public void AcknowledgementsBeyondTheLeadersLogAreRejected()
    {
        var leader = TestNode.Create(1, s_three);
        BecomeLeaderWithCommittedNoop(leader);

        AssertRejected(leader, new Message { Type = MessageType.AppendResponse, From = 2, To = 1, Term = 1, Index = 50 }, MessageRejectReason.Malformed);
    }

    [Test]
    public void RandomMessagesNeverBreakAnInvariant()
    {
        const int seed = 11;
        TestContext.Out.WriteLine($"seed {seed}; reproduce by running this test (it is fully seeded)");
        var random = new Random(seed);
        var net = TestNetwork.OfSize(3);
        net.Campaign(1);
        net.Propose(1, "x");
        var types = Enum.GetValues<MessageType>();
        for (var i = 0; i < 20_000; i++)
        {
            var target = net[(ulong)random.Next(1, 4)];
            var term = (ulong)random.Next(0, 4);
            var index = (ulong)random.Next(0, 6);
            var entries = Enumerable.Range(0, random.Next(0, 3)).Select(k => E((ulong)random.Next(0, 4), index + 1 + (ulong)k, "r")).ToArray();
            var m = new Message
            {
                Type = types[random.Next(types.Length)],
                From = (ulong)random.Next(0, 5),
                To = target.Id,
                Term = term,
                LogTerm = (ulong)random.Next(0, 4),
                Index = index,
                Commit = (ulong)random.Next(0, 6),
                Reject = random.Next(4) == 0,
                RejectHint = (ulong)random.Next(0, 6),
                Entries = entries,
                Snapshot = random.Next(8) == 0 ? new SnapshotMetadata((ulong)random.Next(0, 6), (ulong)random.Next(0, 4), new ConfState(s_three)) : null,
            };
            try
            {
                target.Step(m);
                target.ReadMessages();
            }
            catch (MessageRejectedException)
            {
            }
            catch (ProposalDroppedException)
            {
            }
            catch (Exception ex)
            {
                Assert.Fail($"message #{i} {m} to {target.Id} threw {ex.GetType().Name}: {ex.Message} (seed {seed})");
            }
        }
    }

    // Guards the Raft core review's finding 1, 2: terms and indexes that overflow.
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

    // Guards the Raft core review's finding 1, 2: terms and indexes that overflow.
    [TestCase(ulong.MaxValue)]
    [TestCase(ulong.MaxValue - 1)]
    [TestCase(RaftCore.MaxTermOrIndex + 1)]
    public void TermsAboveTheLimitAreRejected(ulong term) =>
        AssertRejected(Follower(), new Message { Type = MessageType.Heartbeat, From = 2, To = 1, Term = term });

    // Guards the Raft core review's finding 1, 2: terms and indexes that overflow.
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

    // Guards the Raft core review's finding 1, 2: terms and indexes that overflow.
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

    // Guards the Raft core review's finding 1, 2: terms and indexes that overflow.
    [Test]
    public void ASnapshotAtTheLargestIndexIsRejected() =>
        AssertRejected(Follower(), new Message
        {
            Type = MessageType.Snapshot, From = 2, To = 1, Term = 2,
            Snapshot = new SnapshotMetadata(ulong.MaxValue, 2, new ConfState(s_three)),
        });

    // Guards the Raft core review's finding 1, 2: terms and indexes that overflow.
    [Test]
    public void ASnapshotWhoseTermOverflowsIsRejected() =>
        AssertRejected(Follower(), new Message
        {
            Type = MessageType.Snapshot, From = 2, To = 1, Term = 2,
            Snapshot = new SnapshotMetadata(RaftCore.MaxTermOrIndex + 1, 2, new ConfState(s_three)),
        });

    // Guards the Raft core review's finding 1, 2: terms and indexes that overflow.
    [Test]
    public void AppendsWhoseIndexesPassTheLimitAreRejected()
    {
        AssertRejected(Follower(), new Message { Type = MessageType.Append, From = 2, To = 1, Term = 2, Index = ulong.MaxValue, LogTerm = 2 });
        AssertRejected(Follower(), new Message { Type = MessageType.Append, From = 2, To = 1, Term = 2, Index = RaftCore.MaxTermOrIndex, LogTerm = 2, Entries = new[] { E(2, RaftCore.MaxTermOrIndex + 1) } });
        AssertRejected(Follower(), new Message { Type = MessageType.Append, From = 2, To = 1, Term = 2, Index = 2, LogTerm = 1, Commit = ulong.MaxValue });
        AssertRejected(Follower(), new Message { Type = MessageType.Heartbeat, From = 2, To = 1, Term = 2, Commit = ulong.MaxValue });
        AssertRejected(Follower(), new Message { Type = MessageType.Vote, From = 2, To = 1, Term = 2, Index = ulong.MaxValue, LogTerm = 1 });
    }

    // Guards the Raft core review's finding 1, 2: terms and indexes that overflow.
    [Test]
    public void RejectionHintsPastTheLimitAreRejectedByTheLeader()
    {
        var leader = TestNode.Create(1, s_three);
        BecomeLeaderWithCommittedNoop(leader);

        AssertRejected(leader, new Message { Type = MessageType.AppendResponse, From = 2, To = 1, Term = 1, Index = 1, Reject = true, RejectHint = ulong.MaxValue });
        AssertRejected(leader, new Message { Type = MessageType.AppendResponse, From = 2, To = 1, Term = 1, Index = 1, Reject = true, RejectHint = 0, LogTerm = ulong.MaxValue });
    }

    // Guards the Raft core review's finding 5: messages addressed to another node.
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

    // Guards the Raft core review's finding 5: messages addressed to another node.
    [Test]
    public void MessagesWithoutARecipientAreRejected() =>
        AssertRejected(Follower(), new Message { Type = MessageType.Append, From = 2, Term = 1, Index = 2, LogTerm = 1 });

    // Guards the Raft core review's finding 14: requests from unknown peers.
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
