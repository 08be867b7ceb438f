using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Tests.Support;
using static EmbeddedRaft.Consensus.Tests.Support.Fixtures;

namespace EmbeddedRaft.Consensus.Tests.Paper;

/// <summary>The rules of the Raft paper §5.4 (safety), one test each.</summary>
public class SafetyPaperTests
{
    private static readonly ulong[] s_three = [1, 2, 3];

    // Reference: §5.4.1 — "The RequestVote RPC ... includes information about the candidate's
    // log": the index and term of its last entry.
    [TestCase(1)]
    [TestCase(2)]
    public void CandidateRequestsVotesWithItsLastLogIndexAndTerm(int entryCount)
    {
        var entries = Enumerable.Range(1, entryCount).Select(i => E((ulong)i, (ulong)i)).ToArray();
        var node = TestNode.Create(1, s_three);
        var leaderTerm = (ulong)entryCount;
        node.Step(new Message { Type = MessageType.Append, From = 2, To = 1, Term = leaderTerm, Entries = entries });
        node.ReadMessages();

        for (var i = 0; i < 20; i++)
        {
            node.Node.Tick();
        }

        var votes = node.ReadMessages().OrderBy(m => m.To).ToList();
        Assert.That(votes.Select(m => (m.Type, m.To, m.Term, m.Index, m.LogTerm)), Is.EqualTo(new[]
        {
            (MessageType.Vote, 2UL, leaderTerm + 1, (ulong)entryCount, (ulong)entryCount),
            (MessageType.Vote, 3UL, leaderTerm + 1, (ulong)entryCount, (ulong)entryCount),
        }));
    }

    // Reference: §5.4.1 — "the voter denies its vote if its own log is more up-to-date than that
    // of the candidate": compare last terms, then (on equal terms) last indexes.
    [TestCase("1/1", 1UL, 1UL, false, TestName = "Same last term, same index: grant")]
    [TestCase("1/1", 1UL, 2UL, false, TestName = "Same last term, longer candidate: grant")]
    [TestCase("1/1 1/2", 1UL, 1UL, true, TestName = "Same last term, shorter candidate: deny")]
    [TestCase("1/1", 2UL, 1UL, false, TestName = "Candidate has a higher last term: grant")]
    [TestCase("1/1", 2UL, 2UL, false, TestName = "Candidate has a higher last term and more entries: grant")]
    [TestCase("1/1 1/2", 2UL, 1UL, false, TestName = "Candidate has a higher last term but fewer entries: grant")]
    [TestCase("2/1", 1UL, 1UL, true, TestName = "Voter has a higher last term: deny")]
    [TestCase("2/1", 1UL, 2UL, true, TestName = "Voter has a higher last term, candidate longer: deny")]
    [TestCase("2/1 2/2", 1UL, 1UL, true, TestName = "Voter has a higher last term and more entries: deny")]
    public void VoterGrantsOnlyToCandidatesWithLogsAtLeastAsUpToDate(string log, ulong candidateLastTerm, ulong candidateLastIndex, bool denied)
    {
        var entries = log.Split(' ').Select(p => p.Split('/')).Select(p => E(ulong.Parse(p[0], System.Globalization.CultureInfo.InvariantCulture), ulong.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture))).ToArray();
        var node = NodeWithLog(1, s_three, entries);

        node.Step(new Message { Type = MessageType.Vote, From = 2, To = 1, Term = 3, LogTerm = candidateLastTerm, Index = candidateLastIndex });

        var response = node.ReadMessages().Single();
        Assert.That((response.Type, response.Reject), Is.EqualTo((MessageType.VoteResponse, denied)));
    }

    // Reference: §5.4.2 — "Raft never commits log entries from previous terms by counting
    // replicas. Only log entries from the leader's current term are committed by counting
    // replicas."
    [TestCase(1UL, 0UL)]
    [TestCase(2UL, 0UL)]
    [TestCase(3UL, 3UL)]
    public void LeaderCommitsByCountingOnlyEntriesOfItsCurrentTerm(ulong acknowledged, ulong expectedCommit)
    {
        var node = NodeWithLog(1, s_three, [E(1, 1), E(2, 2)], new HardState(2, 0, 0));
        node.Core.BecomeCandidate();
        node.Core.BecomeLeader();
        node.ReadMessages();

        node.Step(new Message { Type = MessageType.AppendResponse, From = 2, To = 1, Term = node.Core.Term, Index = acknowledged });
        node.ReadMessages();

        Assert.That(node.Core.Log.Committed, Is.EqualTo(expectedCommit));
    }
}
