using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Tests.Support;
using static EmbeddedRaft.Consensus.Tests.Support.Fixtures;

namespace EmbeddedRaft.Consensus.Tests.Paper;

/// <summary>The rules of the Raft paper §5.3 (log replication), one test each.</summary>
public class ReplicationPaperTests
{
    private static readonly ulong[] s_three = [1, 2, 3];

    // Reference: §5.3 — "The leader appends the command to its log as a new entry, then issues
    // AppendEntries RPCs in parallel to each of the other servers to replicate the entry."
    // The leader may send before its own write completes (thesis §10.2.1): the appends are in
    // Ready.Messages, the entry in Ready.Entries.
    [Test]
    public void LeaderAppendsAProposalAndSendsAppendEntriesToEveryFollower()
    {
        var node = TestNode.Create(1, s_three);
        BecomeLeaderWithCommittedNoop(node);
        var last = node.Core.Log.LastIndex();

        node.Node.Propose("some data"u8.ToArray());
        var rd = node.Node.GetReady();

        Assert.That(rd.Messages.OrderBy(m => m.To).Select(m => (m.Type, m.To, m.Term, m.Index, m.LogTerm, m.Commit)), Is.EqualTo(new[]
        {
            (MessageType.Append, 2UL, 1UL, last, 1UL, last),
            (MessageType.Append, 3UL, 1UL, last, 1UL, last),
        }));
        foreach (var m in rd.Messages)
        {
            Assert.That(Positions(m.Entries.ToArray()), Is.EqualTo(new[] { (1UL, last + 1) }));
            Assert.That(Text(m.Entries.Span[0]), Is.EqualTo("some data"));
        }

        Assert.That(Positions(rd.Entries.ToArray()), Is.EqualTo(new[] { (1UL, last + 1) }), "entry to persist");
    }

    // Reference: §5.3 — "When the entry has been safely replicated, the leader applies the entry
    // to its state machine ... A log entry is committed once the leader that created the entry
    // has replicated it on a majority of the servers." The new commit index is then sent on.
    [Test]
    public void LeaderCommitsAnEntryReplicatedOnAMajorityAndTellsFollowers()
    {
        var node = TestNode.Create(1, s_three);
        BecomeLeaderWithCommittedNoop(node);
        var last = node.Core.Log.LastIndex();
        node.Node.Propose("some data"u8.ToArray());
        var appends = node.ReadMessages();

        node.Step(new Message { Type = MessageType.AppendResponse, From = appends[0].To, To = 1, Term = 1, Index = last + 1 });
        var messages = node.ReadMessages();

        Assert.That(node.Core.Log.Committed, Is.EqualTo(last + 1));
        Assert.That(Text(node.Applied[^1]), Is.EqualTo("some data"));
        Assert.That(messages.Select(m => (m.Type, m.Commit)).Distinct(), Is.EqualTo(new[] { (MessageType.Append, last + 1) }));
    }

    // Reference: §5.3 — a leader counts an entry committed once a majority (itself included)
    // has it; fewer acknowledgements commit nothing.
    [TestCase(1, new ulong[0], true)]
    [TestCase(3, new ulong[0], false)]
    [TestCase(3, new ulong[] { 2 }, true)]
    [TestCase(3, new ulong[] { 2, 3 }, true)]
    [TestCase(5, new ulong[0], false)]
    [TestCase(5, new ulong[] { 2 }, false)]
    [TestCase(5, new ulong[] { 2, 3 }, true)]
    [TestCase(5, new ulong[] { 2, 3, 4 }, true)]
    [TestCase(5, new ulong[] { 2, 3, 4, 5 }, true)]
    public void LeaderAcknowledgesCommitOnlyWithAMajority(int size, ulong[] acks, bool committed)
    {
        var node = TestNode.Create(1, Ids(size));
        BecomeLeaderWithCommittedNoop(node);
        var last = node.Core.Log.LastIndex();
        node.Node.Propose("some data"u8.ToArray());
        node.ReadMessages();

        foreach (var id in acks)
        {
            node.Step(new Message { Type = MessageType.AppendResponse, From = id, To = 1, Term = 1, Index = last + 1 });
        }

        node.ReadMessages();
        Assert.That(node.Core.Log.Committed > last, Is.EqualTo(committed));
    }

    // Reference: §5.3 — "This also commits all preceding entries in the leader's log, including
    // entries created by previous leaders."
    [TestCase(0)]
    [TestCase(1)]
    [TestCase(2)]
    public void CommittingAnEntryCommitsAllPrecedingEntries(int variant)
    {
        Entry[][] logs =
        [
            [],
            [E(2, 1)],
            [E(1, 1), E(2, 2)],
        ];
        var log = logs[variant];
        var node = NodeWithLog(1, s_three, log, new HardState(2, 0, 0));
        node.Core.BecomeCandidate();
        node.Core.BecomeLeader();
        node.Node.Propose("some data"u8.ToArray());
        node.ReadMessages();

        foreach (var id in new ulong[] { 2, 3 })
        {
            node.Step(new Message { Type = MessageType.AppendResponse, From = id, To = 1, Term = 3, Index = (ulong)log.Length + 2 });
        }

        node.ReadMessages();
        var expected = log.Select(e => (e.Term, e.Index)).Append((3UL, (ulong)log.Length + 1)).Append((3UL, (ulong)log.Length + 2));
        Assert.That(Positions(node.Applied), Is.EqualTo(expected));
        Assert.That(Text(node.Applied[^1]), Is.EqualTo("some data"));
    }

    // Reference: §5.3 — "Once a follower learns that a log entry is committed, it applies the
    // entry to its local state machine (in log order)."
    [TestCase(1UL, 1)]
    [TestCase(2UL, 2)]
    [TestCase(2UL, 1)]
    [TestCase(1UL, 2)]
    public void FollowerCommitsUpToTheLeadersCommitIndex(ulong commit, int entryCount)
    {
        var node = TestNode.Create(1, s_three);
        node.Core.BecomeFollower(1, 2);
        var entries = Enumerable.Range(1, entryCount).Select(i => E(1, (ulong)i, $"some data {i}")).ToArray();

        node.Step(new Message { Type = MessageType.Append, From = 2, To = 1, Term = 1, Entries = entries, Commit = commit });
        node.ReadMessages();

        var expectedCommit = Math.Min(commit, (ulong)entryCount);
        Assert.That(node.Core.Log.Committed, Is.EqualTo(expectedCommit));
        Assert.That(Positions(node.Applied), Is.EqualTo(Positions(entries.Take((int)expectedCommit))));
    }

    // Reference: §5.3 — "When sending an AppendEntries RPC, the leader includes the index and
    // term of the entry in its log that immediately precedes the new entries. If the follower
    // does not find an entry in its log with the same index and term, then it refuses the new
    // entries." The refusal carries a hint: the last index that may match, and its term.
    [TestCase(0UL, 0UL, 1UL, false, 0UL, 0UL, TestName = "Matches the committed prefix")]
    [TestCase(1UL, 1UL, 1UL, false, 0UL, 0UL, TestName = "Matches a committed entry")]
    [TestCase(2UL, 2UL, 2UL, false, 0UL, 0UL, TestName = "Matches an uncommitted entry")]
    [TestCase(1UL, 2UL, 2UL, true, 1UL, 1UL, TestName = "Rejects a term mismatch with a hint")]
    [TestCase(3UL, 3UL, 3UL, true, 2UL, 2UL, TestName = "Rejects a missing entry with a hint")]
    public void FollowerChecksThePrecedingEntryBeforeAppending(
        ulong logTerm, ulong index, ulong expectedIndex, bool rejected, ulong hint, ulong hintTerm)
    {
        var node = NodeWithLog(1, s_three, [E(1, 1), E(2, 2)], new HardState(0, 0, 1));
        node.Core.BecomeFollower(3, 2);

        node.Step(new Message { Type = MessageType.Append, From = 2, To = 1, Term = 3, LogTerm = logTerm, Index = index });

        var response = node.ReadMessages().Single();
        Assert.That(
            (response.Type, response.Term, response.Index, response.Reject, response.RejectHint, response.LogTerm),
            Is.EqualTo((MessageType.AppendResponse, 3UL, expectedIndex, rejected, hint, hintTerm)));
    }

    // Reference: §5.3 — "If an existing entry conflicts with a new one (same index but different
    // terms), delete the existing entry and all that follow it; append any new entries not
    // already in the log."
    [TestCase(2UL, 2UL, "3/3", "1/1 2/2 3/3", "3/3")]
    [TestCase(1UL, 1UL, "3/2 4/3", "1/1 3/2 4/3", "3/2 4/3")]
    [TestCase(0UL, 0UL, "1/1", "1/1 2/2", "")]
    [TestCase(0UL, 0UL, "3/1", "3/1", "3/1")]
    public void FollowerTruncatesConflictingEntriesAndAppendsNewOnes(ulong index, ulong logTerm, string sent, string expectedLog, string expectedUnstable)
    {
        var node = NodeWithLog(1, s_three, [E(1, 1), E(2, 2)]);
        node.Core.BecomeFollower(4, 2);

        node.Step(new Message { Type = MessageType.Append, From = 2, To = 1, Term = 4, LogTerm = logTerm, Index = index, Entries = Parse(sent) });

        Assert.That(Positions(node.Core.Log.Unstable.Entries.ToArray()), Is.EqualTo(Positions(Parse(expectedUnstable))));
        node.ReadMessages();
        Assert.That(Positions(node.LogEntries()), Is.EqualTo(Positions(Parse(expectedLog))));
    }

    private static Entry[] Parse(string positions) =>
        positions.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(p => p.Split('/'))
            .Select(p => E(ulong.Parse(p[0], System.Globalization.CultureInfo.InvariantCulture), ulong.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture)))
            .ToArray();

    // Reference: §5.3, Figure 7 — whatever a follower's log looks like (missing entries, extra
    // uncommitted entries, or both), the leader's consistency check brings it in line with the
    // leader's log.
    [TestCase("1/1 1/2 1/3 4/4 4/5 5/6 5/7 6/8 6/9", TestName = "Figure 7 (a): missing one entry")]
    [TestCase("1/1 1/2 1/3 4/4", TestName = "Figure 7 (b): missing many entries")]
    [TestCase("1/1 1/2 1/3 4/4 4/5 5/6 5/7 6/8 6/9 6/10 6/11", TestName = "Figure 7 (c): one extra entry")]
    [TestCase("1/1 1/2 1/3 4/4 4/5 5/6 5/7 6/8 6/9 6/10 7/11 7/12", TestName = "Figure 7 (d): extra entries of a later term")]
    [TestCase("1/1 1/2 1/3 4/4 4/5 4/6 4/7", TestName = "Figure 7 (e): missing and extra entries")]
    [TestCase("1/1 1/2 1/3 2/4 2/5 2/6 3/7 3/8 3/9 3/10 3/11", TestName = "Figure 7 (f): a divergent history")]
    public void LeaderBringsADivergentFollowerLogInLine(string followerLog)
    {
        var leaderLog = Parse("1/1 1/2 1/3 4/4 4/5 5/6 5/7 6/8 6/9 6/10");
        var leader = NodeWithLog(1, s_three, leaderLog, new HardState(8, 0, (ulong)leaderLog.Length));
        var follower = NodeWithLog(2, s_three, Parse(followerLog), new HardState(7, 0, 0));

        // Node 3 is a black hole; its vote is delivered by hand so the leader can win whatever
        // the follower thinks of its log.
        var net = new TestNetwork(leader, follower);
        net.Campaign(1);
        net.Send(new Message { Type = MessageType.VoteResponse, From = 3, To = 1, Term = leader.Core.Term });
        net.Propose(1, string.Empty);

        Assert.That(leader.Core.Role, Is.EqualTo(StateRole.Leader));
        Assert.That(Positions(follower.LogEntries()), Is.EqualTo(Positions(leader.LogEntries())));
        Assert.That(follower.Core.Log.Committed, Is.EqualTo(leader.Core.Log.Committed));
    }

    // Reference: §5.3 — heartbeats carry the commit index, but only as far as the follower's log
    // is known to match (min(match, commit)), so a follower never commits an entry it holds from
    // a different leader.
    [Test]
    public void HeartbeatsCarryOnlyACommitIndexTheFollowerIsKnownToHold()
    {
        var node = TestNode.Create(1, s_three);
        BecomeLeaderWithCommittedNoop(node);
        node.Node.Propose("a"u8.ToArray());
        node.ReadMessages();
        node.Step(new Message { Type = MessageType.AppendResponse, From = 2, To = 1, Term = 1, Index = 2 });
        node.ReadMessages();
        Assert.That(node.Core.Log.Committed, Is.EqualTo(2));

        node.Node.Tick();
        var heartbeats = node.ReadMessages().Where(m => m.Type == MessageType.Heartbeat).OrderBy(m => m.To).ToList();

        Assert.That(heartbeats.Select(m => (m.To, m.Commit)), Is.EqualTo(new[] { (2UL, 2UL), (3UL, 1UL) }));
    }
}
