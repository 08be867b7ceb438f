using EmbeddedRaft.Consensus.Membership;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Tests.Support;
using static EmbeddedRaft.Consensus.Tests.Support.Fixtures;

namespace EmbeddedRaft.Consensus.Tests.Unit;

/// <summary>
/// <see cref="RawNode.MaxOutstandingReadies"/> above 1 (etcd-io/raft's asynchronous storage
/// writes, which <c>RaftNode</c> uses): the next Ready is handed out while earlier ones are still
/// being persisted. Each Ready carries only what no earlier outstanding one carries, Advance goes
/// oldest first, and what promises durability still waits for its own Ready.
/// </summary>
public class PipelinedReadyTests
{
    private static readonly ulong[] s_three = [1, 2, 3];

    [Test]
    public void ASecondReadyCarriesOnlyTheEntriesAndCommittedEntriesTheFirstDoesNot()
    {
        var net = TestNetwork.OfSize(3);
        net.Campaign(1);
        var leader = net[1];
        leader.Node.MaxOutstandingReadies = 2;

        leader.Node.Propose("x"u8.ToArray());
        var first = leader.Node.GetReady();
        leader.Persist(first);
        leader.Node.Propose("y"u8.ToArray());
        Assert.That(leader.Node.HasReady(), Is.True, "a second Ready may be handed out while the first is written");
        var second = leader.Node.GetReady();

        Assert.That(Positions(first.Entries.ToArray()), Is.EqualTo(new[] { (1UL, 2UL) }));
        Assert.That(Positions(second.Entries.ToArray()), Is.EqualTo(new[] { (1UL, 3UL) }), "the first Ready's entry is not handed out again");
        Assert.That(second.Messages.Where(m => m.Type == MessageType.Append).SelectMany(m => m.Entries.ToArray()).Select(e => e.Index).Distinct(), Is.EqualTo(new[] { 3UL }));

        leader.Node.Propose("z"u8.ToArray());
        Assert.That(leader.Node.HasReady(), Is.False, "two Readies are outstanding, the limit");
        Assert.Throws<InvalidOperationException>(() => leader.Node.GetReady());

        leader.Persist(second);
        leader.Node.Advance();
        leader.Node.Advance();
        Assert.Throws<InvalidOperationException>(() => leader.Node.Advance(), "one Advance per Ready");
        var third = leader.Node.GetReady();
        Assert.That(Positions(third.Entries.ToArray()), Is.EqualTo(new[] { (1UL, 4UL) }));
        Assert.That(leader.Core.Log.Unstable.Offset, Is.EqualTo(4UL), "entries 2 and 3 are stable once both Readies advanced");
    }

    [Test]
    public void TheLeaderCountsItsOwnEntriesOnlyAsTheReadiesCarryingThemAdvanceInOrder()
    {
        var net = TestNetwork.OfSize(3);
        net.Campaign(1);
        var leader = net[1];
        leader.Node.MaxOutstandingReadies = 3;

        leader.Node.Propose("x"u8.ToArray());
        var first = leader.Node.GetReady();
        leader.Node.Propose("y"u8.ToArray());
        var second = leader.Node.GetReady();
        leader.Persist(first);
        leader.Persist(second);

        // Follower 2 has both entries durably; follower 3 has nothing. A quorum of two needs the leader.
        var follower = net[2];
        foreach (var append in first.Messages.Concat(second.Messages).Where(m => m.To == 2))
        {
            follower.Step(append);
        }

        foreach (var ack in follower.ReadMessages().Where(m => m.Type == MessageType.AppendResponse))
        {
            leader.Node.Step(ack);
        }

        Assert.That(leader.Core.Log.Committed, Is.EqualTo(1UL), "the leader's own entries are not durable yet");

        leader.Node.Advance();
        Assert.That(leader.Core.Log.Committed, Is.EqualTo(2UL), "the first Ready advanced: entry 2 has a quorum");
        var third = leader.Node.GetReady();
        Assert.That(Positions(third.CommittedEntries.ToArray()), Is.EqualTo(new[] { (1UL, 2UL) }));

        leader.Node.Advance();
        Assert.That(leader.Core.Log.Committed, Is.EqualTo(3UL));
        var fourth = leader.Node.GetReady();
        Assert.That(Positions(fourth.CommittedEntries.ToArray()), Is.EqualTo(new[] { (1UL, 3UL) }), "committed entries handed out are not handed out again");

        leader.Persist(third);
        leader.Node.Advance();
        Assert.That(leader.Core.Log.Applied, Is.EqualTo(2UL));
        Assert.That(leader.Core.Log.Applying, Is.EqualTo(3UL));
        leader.Persist(fourth);
        leader.Node.Advance();
        Assert.That(leader.Core.Log.Applied, Is.EqualTo(3UL));
    }

    [Test]
    public void EntriesOverwrittenWhileTheirReadyIsBeingWrittenAreHandedOutAgainAndWinOnDisk()
    {
        var follower = NodeWithLog(1, s_three, [E(1, 1, "a"), E(1, 2, "b")], new HardState(1, 0, 2));
        follower.Core.BecomeFollower(1, 2);
        follower.Node.MaxOutstandingReadies = 2;

        // The old leader's entries 3 and 4 are being written...
        follower.Step(new Message { Type = MessageType.Append, From = 2, To = 1, Term = 1, Index = 2, LogTerm = 1, Commit = 2, Entries = new[] { E(1, 3, "c"), E(1, 4, "d") } });
        var first = follower.Node.GetReady();
        follower.Persist(first);
        Assert.That(first.MessagesAfterPersist.Select(m => (m.Type, m.Index)), Is.EqualTo(new[] { (MessageType.AppendResponse, 4UL) }));

        // ...when a new leader replaces them from index 3.
        follower.Step(new Message { Type = MessageType.Append, From = 3, To = 1, Term = 2, Index = 2, LogTerm = 1, Commit = 2, Entries = new[] { E(2, 3, "C") } });
        var second = follower.Node.GetReady();
        Assert.That(Positions(second.Entries.ToArray()), Is.EqualTo(new[] { (2UL, 3UL) }), "the replacing entry is handed out although index 3 is in the first Ready");
        Assert.That(second.MustSync, Is.True);
        Assert.That(second.MessagesAfterPersist.Select(m => (m.Type, m.To, m.Term, m.Index)), Is.EqualTo(new[] { (MessageType.AppendResponse, 3UL, 2UL, 3UL) }));

        // Written in the order handed out, the newer entry wins on disk as in memory.
        follower.Persist(second);
        follower.Node.Advance();
        Assert.That(follower.Core.Log.Unstable.Count, Is.EqualTo(1), "the first Ready's entries were replaced: marking them stable must not drop the new one");
        follower.Node.Advance();
        Assert.That(follower.Core.Log.Unstable.Count, Is.EqualTo(0));
        Assert.That(follower.Storage.LastIndex(), Is.EqualTo(3UL));
        Assert.That(follower.Storage.Term(3), Is.EqualTo(2UL));
        Assert.That(follower.Node.HasReady(), Is.False, "nothing is handed out twice");
    }

    [Test]
    public void NoReadyIsHandedOutBesideOneCarryingASnapshot()
    {
        var follower = NodeWithLog(1, s_three, [E(1, 1, "a"), E(1, 2, "b")], new HardState(1, 0, 2));
        follower.Core.BecomeFollower(1, 2);
        follower.Node.MaxOutstandingReadies = 4;

        follower.Step(new Message { Type = MessageType.Append, From = 2, To = 1, Term = 1, Index = 2, LogTerm = 1, Commit = 2, Entries = new[] { E(1, 3, "c") } });
        var first = follower.Node.GetReady();
        follower.Persist(first);

        // A snapshot arrives while the first Ready is being written: it waits for that Ready.
        follower.Step(new Message
        {
            Type = MessageType.Snapshot,
            From = 2,
            To = 1,
            Term = 1,
            Snapshot = new SnapshotMetadata(10, 1, new ConfState(s_three)),
        });
        Assert.That(follower.Node.HasReady(), Is.False, "a pending snapshot is handed out alone");
        Assert.Throws<InvalidOperationException>(() => follower.Node.GetReady());

        follower.Node.Advance();
        var withSnapshot = follower.Node.GetReady();
        Assert.That(withSnapshot.Snapshot?.Index, Is.EqualTo(10UL));

        // While the snapshot is being persisted, nothing else is handed out.
        follower.Step(new Message { Type = MessageType.Heartbeat, From = 2, To = 1, Term = 1, Commit = 10 });
        Assert.That(follower.Node.HasReady(), Is.False);
        follower.Persist(withSnapshot);
        follower.Node.Advance();
        Assert.That(follower.Node.HasReady(), Is.True);
    }

    [Test]
    public void EachAdvanceRequiresOnlyTheConfigurationChangesOfItsOwnReadyToBeApplied()
    {
        var net = TestNetwork.OfSize(3);
        net.Campaign(1);
        var leader = net[1];
        leader.Node.MaxOutstandingReadies = 2;

        leader.Node.ProposeConfChange(ConfChange.AddLearner(4));
        var appending = leader.Node.GetReady();
        leader.Persist(appending);

        // Both followers hold the change durably: it commits without the leader's own write.
        foreach (var id in new ulong[] { 2, 3 })
        {
            foreach (var append in appending.Messages.Where(m => m.To == id))
            {
                net[id].Step(append);
            }

            foreach (var ack in net[id].ReadMessages().Where(m => m.Type == MessageType.AppendResponse))
            {
                leader.Node.Step(ack);
            }
        }

        var committing = leader.Node.GetReady();
        Assert.That(committing.CommittedEntries.ToArray().Select(e => e.Type), Is.EqualTo(new[] { EntryType.ConfChange }));

        leader.Node.Advance();
        Assert.Throws<InvariantViolationException>(() => leader.Node.Advance(), "the Ready that handed out the change needs it applied first");
        leader.Node.ApplyConfChange(MessageCodec.DecodeConfChange(committing.CommittedEntries.Span[0].Data.Span));
        leader.Node.Advance();
        Assert.That(leader.Core.Tracker.Learners, Does.Contain(4UL));
    }
}
