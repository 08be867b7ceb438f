using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Tests.Support;
using static EmbeddedRaft.Consensus.Tests.Support.Fixtures;

namespace EmbeddedRaft.Consensus.Tests.Paper;

/// <summary>
/// The rules of the Raft paper §5.1 and §5.2, one test each, in the spirit of etcd-io/raft's
/// raft_paper_test.go: set up a node, act, check.
/// </summary>
public class ElectionPaperTests
{
    private static readonly ulong[] s_three = [1, 2, 3];

    public enum StartRole
    {
        Follower,
        Candidate,
        Leader,
    }

    private static TestNode NodeIn(StartRole role)
    {
        var node = TestNode.Create(1, s_three);
        switch (role)
        {
            case StartRole.Follower:
                node.Core.BecomeFollower(1, 2);
                break;
            case StartRole.Candidate:
                node.Core.BecomeFollower(0, 0);
                node.Core.BecomeCandidate();
                break;
            case StartRole.Leader:
                node.Core.BecomeCandidate();
                node.Core.BecomeLeader();
                break;
        }

        node.ReadMessages();
        return node;
    }

    // Reference: §5.1 — "If one server's current term is smaller than the other's, then it
    // updates its current term to the larger value. If a candidate or leader discovers that its
    // term is out of date, it immediately reverts to follower state."
    [TestCase(StartRole.Follower)]
    [TestCase(StartRole.Candidate)]
    [TestCase(StartRole.Leader)]
    public void AnyRoleAdoptsAHigherTermAndBecomesFollower(StartRole role)
    {
        var node = NodeIn(role);

        node.Step(new Message { Type = MessageType.Append, From = 2, To = 1, Term = 2 });

        Assert.That(node.Core.Term, Is.EqualTo(2));
        Assert.That(node.Core.Role, Is.EqualTo(StateRole.Follower));
        Assert.That(node.Core.Lead, Is.EqualTo(2));
    }

    // Reference: §5.1 — "If a server receives a request with a stale term number, it rejects the request."
    [Test]
    public void MessagesWithAStaleTermAreIgnored()
    {
        var node = NodeWithLog(1, s_three, [], new HardState(2, 0, 0));

        node.Step(new Message { Type = MessageType.Append, From = 2, To = 1, Term = 1, Entries = new[] { E(1, 1, "x") } });

        Assert.That(node.ReadMessages(), Is.Empty);
        Assert.That(node.Core.Log.LastIndex(), Is.EqualTo(0));
        Assert.That(node.Core.Lead, Is.EqualTo(0));
        Assert.That(node.Core.Term, Is.EqualTo(2));
    }

    // Reference: §5.2 — "When servers start up, they begin as followers."
    [Test]
    public void NodesStartAsFollowersInTermZero()
    {
        var node = TestNode.Create(1, s_three);

        Assert.That(node.Core.Role, Is.EqualTo(StateRole.Follower));
        Assert.That(node.Core.Term, Is.EqualTo(0));
    }

    // Reference: §5.2 — "Leaders send periodic heartbeats (AppendEntries RPCs that carry no log
    // entries) to all followers in order to maintain their authority."
    [Test]
    public void LeaderBroadcastsHeartbeatsEveryHeartbeatTimeout()
    {
        const int heartbeat = 1;
        var node = new TestNode(TestNode.DefaultOptions(1, 10, heartbeat), MemoryStorage.WithVoters(s_three));
        node.Core.BecomeCandidate();
        node.Core.BecomeLeader();
        node.ReadMessages();

        for (var i = 0; i < heartbeat; i++)
        {
            node.Node.Tick();
        }

        var messages = node.ReadMessages().OrderBy(m => m.To).ToList();
        Assert.That(messages.Select(m => (m.Type, m.To, m.Term, m.Entries.Length)), Is.EqualTo(new[]
        {
            (MessageType.Heartbeat, 2UL, 1UL, 0),
            (MessageType.Heartbeat, 3UL, 1UL, 0),
        }));
    }

    // Reference: §5.2 — "If a follower receives no communication over a period of time called the
    // election timeout, then it ... begins an election: it increments its current term and
    // transitions to candidate state. It then votes for itself and issues RequestVote RPCs in
    // parallel to each of the other servers." Also: a candidate whose election times out starts
    // a new one.
    [TestCase(StartRole.Follower)]
    [TestCase(StartRole.Candidate)]
    public void ElectionTimeoutStartsANewElectionInTheNextTerm(StartRole role)
    {
        const int election = 10;
        var node = NodeIn(role);
        var term = node.Core.Term;

        for (var i = 0; i < 2 * election; i++)
        {
            node.Node.Tick();
        }

        var messages = node.ReadMessages().OrderBy(m => m.To).ToList();
        Assert.That(node.Core.Term, Is.EqualTo(term + 1));
        Assert.That(node.Core.Role, Is.EqualTo(StateRole.Candidate));
        Assert.That(node.Core.Vote, Is.EqualTo(1), "votes for itself");
        Assert.That(messages.Select(m => (m.Type, m.To, m.Term)), Is.EqualTo(new[]
        {
            (MessageType.Vote, 2UL, term + 1),
            (MessageType.Vote, 3UL, term + 1),
        }));
    }

    // Reference: §5.2 — a candidate wins if it receives votes from a majority; loses (reverts to
    // follower) if a majority rejects it; otherwise stays candidate until the round resolves.
    [TestCase(1, new ulong[0], new ulong[0], StateRole.Leader)]
    [TestCase(3, new ulong[] { 2, 3 }, new ulong[0], StateRole.Leader)]
    [TestCase(3, new ulong[] { 2 }, new ulong[0], StateRole.Leader)]
    [TestCase(5, new ulong[] { 2, 3, 4, 5 }, new ulong[0], StateRole.Leader)]
    [TestCase(5, new ulong[] { 2, 3, 4 }, new ulong[0], StateRole.Leader)]
    [TestCase(5, new ulong[] { 2, 3 }, new ulong[0], StateRole.Leader)]
    [TestCase(3, new ulong[0], new ulong[] { 2, 3 }, StateRole.Follower)]
    [TestCase(5, new ulong[0], new ulong[] { 2, 3, 4, 5 }, StateRole.Follower)]
    [TestCase(5, new ulong[] { 2 }, new ulong[] { 3, 4, 5 }, StateRole.Follower)]
    [TestCase(3, new ulong[0], new ulong[0], StateRole.Candidate)]
    [TestCase(5, new ulong[] { 2 }, new ulong[0], StateRole.Candidate)]
    [TestCase(5, new ulong[0], new ulong[] { 2, 3 }, StateRole.Candidate)]
    [TestCase(5, new ulong[0], new ulong[0], StateRole.Candidate)]
    public void ElectionInOneRoundIsWonLostOrStillPending(int size, ulong[] granted, ulong[] rejected, StateRole expected)
    {
        var node = TestNode.Create(1, Ids(size));

        node.Node.Campaign();
        node.ReadMessages();
        foreach (var id in granted)
        {
            node.Step(new Message { Type = MessageType.VoteResponse, From = id, To = 1, Term = node.Core.Term });
        }

        foreach (var id in rejected)
        {
            node.Step(new Message { Type = MessageType.VoteResponse, From = id, To = 1, Term = node.Core.Term, Reject = true });
        }

        Assert.That(node.Core.Role, Is.EqualTo(expected));
        Assert.That(node.Core.Term, Is.EqualTo(1));
    }

    // Reference: §5.2 — "Each server will vote for at most one candidate in a given term, on a
    // first-come-first-served basis."
    [TestCase(0UL, 2UL, false)]
    [TestCase(0UL, 3UL, false)]
    [TestCase(2UL, 2UL, false)]
    [TestCase(3UL, 3UL, false)]
    [TestCase(2UL, 3UL, true)]
    [TestCase(3UL, 2UL, true)]
    public void FollowerVotesForAtMostOneCandidatePerTerm(ulong alreadyVotedFor, ulong candidate, bool rejected)
    {
        var node = NodeWithLog(1, s_three, [], new HardState(1, alreadyVotedFor, 0));

        node.Step(new Message { Type = MessageType.Vote, From = candidate, To = 1, Term = 1 });

        var response = node.ReadMessages().Single();
        Assert.That((response.Type, response.To, response.Term, response.Reject), Is.EqualTo((MessageType.VoteResponse, candidate, 1UL, rejected)));
        Assert.That(node.Core.Vote, Is.EqualTo(alreadyVotedFor == 0 ? candidate : alreadyVotedFor));
    }

    // Reference: §5.2 — "If the leader's term ... is at least as large as the candidate's current
    // term, then the candidate recognizes the leader as legitimate and returns to follower state."
    [TestCase(0UL)]
    [TestCase(1UL)]
    public void CandidateFallsBackToFollowerOnAppendFromAValidLeader(ulong termAhead)
    {
        var node = TestNode.Create(1, s_three);
        node.Node.Campaign();
        node.ReadMessages();
        var term = node.Core.Term + termAhead;

        node.Step(new Message { Type = MessageType.Append, From = 2, To = 1, Term = term });

        Assert.That(node.Core.Role, Is.EqualTo(StateRole.Follower));
        Assert.That(node.Core.Term, Is.EqualTo(term));
        Assert.That(node.Core.Lead, Is.EqualTo(2));
    }

    // Reference: §5.2 — "Raft uses randomized election timeouts ... chosen randomly from a fixed
    // interval." Here: uniformly from [et, 2et), and the election fires exactly then.
    [TestCase(StartRole.Follower)]
    [TestCase(StartRole.Candidate)]
    public void ElectionTimeoutIsRandomizedOverOneToTwoElectionTimeouts(StartRole role)
    {
        const int election = 10;
        var seen = new HashSet<int>();
        var node = NodeIn(role);
        for (var round = 0; round < 300; round++)
        {
            var term = node.Core.Term;
            var ticks = 0;
            while (node.Core.Term == term)
            {
                node.Node.Tick();
                ticks++;
                Assert.That(ticks, Is.LessThan(2 * election), "election did not start within 2 * election timeout");
            }

            node.ReadMessages();
            Assert.That(ticks, Is.GreaterThanOrEqualTo(election));
            seen.Add(ticks);
        }

        Assert.That(seen.Order(), Is.EqualTo(Enumerable.Range(election, election)), "every timeout in [et, 2et) occurs");
    }

    // Reference: §5.2 — "in most cases only a single server will time out": randomized timeouts
    // make simultaneous timeouts (and split votes) rare.
    [TestCase(StartRole.Follower)]
    [TestCase(StartRole.Candidate)]
    public void RandomizedElectionTimeoutsRarelyConflict(StartRole role)
    {
        const int election = 10;
        const int rounds = 1000;
        var ids = Ids(5);
        var nodes = ids.Select(id => TestNode.Create(id, ids, election)).ToArray();
        var conflicts = 0;
        for (var round = 0; round < rounds; round++)
        {
            foreach (var n in nodes)
            {
                if (role == StartRole.Follower)
                {
                    n.Core.BecomeFollower(n.Core.Term + 1, 0);
                }
                else
                {
                    n.Core.BecomeFollower(n.Core.Term, 0);
                    n.Core.BecomeCandidate();
                }
            }

            var timedOut = 0;
            while (timedOut == 0)
            {
                foreach (var n in nodes)
                {
                    var term = n.Core.Term;
                    var wasCandidateOrFollower = n.Core.Role;
                    n.Core.Tick();
                    if (n.Core.Term != term || n.Core.Role != wasCandidateOrFollower)
                    {
                        timedOut++;
                    }
                }
            }

            if (timedOut > 1)
            {
                conflicts++;
            }

            foreach (var n in nodes)
            {
                n.Core.Messages.Clear();
                n.Core.MessagesAfterAppend.Clear();
            }
        }

        Assert.That((double)conflicts / rounds, Is.LessThanOrEqualTo(0.3));
    }
}
