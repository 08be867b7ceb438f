using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Tests.Scenarios;
using EmbeddedRaft.Consensus.Tests.Support;

namespace EmbeddedRaft.Consensus.Tests.Unit;

/// <summary>
/// Lease-based reads (<see cref="ReadOnlyMode.LeaseBased"/>): a leader answers reads alone while
/// its lease holds, which is safe only because followers keep their promise not to vote for an
/// election timeout after hearing from it, across forgotten leaders, restarts and explicit campaigns.
/// </summary>
public class LeaseReadTests
{
    // Guards issue 10's conformance finding 2: lease reads after the leader is partitioned away.
    /// <summary>
    /// Every clock ticks in lockstep and delivery is instant. After the leader is cut off, the
    /// majority elects a new leader and commits every round; every read the old leader answers
    /// must still cover everything committed before it was requested (linearizability).
    /// </summary>
    [Test]
    public void APartitionedLeaderNeverAnswersALeaseReadThatMissesACommittedEntry()
    {
        var runner = new ScenarioRunner();
        runner.RunOrFail("add-nodes 3 lease", "campaign 1", "stabilize", "tick-all 1", "stabilize", "partition 1 | 2 3");

        var answered = 0;
        for (var round = 0; round < 40; round++)
        {
            runner.RunOrFail("tick-all 1", "stabilize 2 3");
            var newLeader = runner.Node(2).Core.Lead;
            if (newLeader is 2 or 3)
            {
                runner.RunOrFail($"propose {newLeader} w{round}", "stabilize 2 3");
            }

            var committedElsewhere = Math.Max(runner.Node(2).Core.Log.Committed, runner.Node(3).Core.Log.Committed);
            var before = runner.Node(1).ReadStates.Count;
            runner.RunOrFail($"read-index 1 r{round}", "process-ready 1");
            foreach (var state in runner.Node(1).ReadStates.Skip(before))
            {
                answered++;
                Assert.That(
                    state.Index,
                    Is.GreaterThanOrEqualTo(committedElsewhere),
                    $"round {round}: the old leader answered a read with index {state.Index} while {committedElsewhere} was committed");
            }
        }

        Assert.That(runner.Node(2).Core.Log.Committed, Is.GreaterThan(10UL), "the majority moved on");
        Assert.That(answered, Is.GreaterThan(0), "the old leader answered reads while its lease held (otherwise nothing was checked)");
    }

    // Guards issue 10's conformance finding 2: lease reads after the leader is partitioned away.
    private static TestNode LeaseFollower()
    {
        var options = TestNode.Seeded(1) with { ElectionTimeoutTicks = 10, CheckQuorum = true, ReadOnlyMode = ReadOnlyMode.LeaseBased };
        var node = Fixtures.NodeWithLog(1, [1, 2, 3], [Fixtures.E(1, 1)], new HardState(1, 0, 1), options);
        node.Step(new Message { Type = MessageType.Heartbeat, From = 2, To = 1, Term = 1, Commit = 1 });
        node.ReadMessages();
        return node;
    }

    // Guards issue 10's conformance finding 2: lease reads after the leader is partitioned away.
    private static bool GrantsVote(TestNode node, ulong term)
    {
        node.Step(new Message { Type = MessageType.Vote, From = 3, To = 1, Term = term, Index = 1, LogTerm = 1 });
        return node.ReadMessages().Any(m => m.Type == MessageType.VoteResponse && !m.Reject);
    }

    // Guards issue 10's conformance finding 2: lease reads after the leader is partitioned away.
    /// <summary>
    /// The lease rests on the followers' promise: within an election timeout of hearing from the
    /// leader a follower grants no vote, even after a message of a higher term made it forget
    /// that leader (etcd would grant: its inLease needs a known leader).
    /// </summary>
    [Test]
    public void ALeaseFollowerKeepsItsPromiseAfterAHigherTermMakesItForgetTheLeader()
    {
        var node = LeaseFollower();
        node.Step(new Message { Type = MessageType.AppendResponse, From = 3, To = 1, Term = 2, Index = 1 });
        Assert.That((node.Core.Term, node.Core.Lead), Is.EqualTo((2UL, 0UL)), "term adopted, leader forgotten");

        for (var i = 0; i < 9; i++)
        {
            node.Node.Tick();
        }

        Assert.That(GrantsVote(node, 2), Is.False, "9 ticks after the heartbeat: still promised");
        node.Node.Tick();
        Assert.That(GrantsVote(node, 2), Is.True, "10 ticks: the promise has run out");
    }

    // Guards issue 10's conformance finding 2: lease reads after the leader is partitioned away.
    [Test]
    public void ARestartedLeaseFollowerKeepsItsPromiseForAnElectionTimeout()
    {
        var node = LeaseFollower();
        node.Restart();
        for (var i = 0; i < 9; i++)
        {
            node.Node.Tick();
        }

        Assert.That(GrantsVote(node, 5), Is.False, "it may have promised just before stopping");
        node.Node.Tick();
        Assert.That(GrantsVote(node, 5), Is.True);
    }

    // Guards issue 10's conformance finding 2: lease reads after the leader is partitioned away.
    [Test]
    public void AnExplicitCampaignInsideThePromiseDoesNothingInLeaseMode()
    {
        var node = LeaseFollower();
        node.Node.Campaign();
        Assert.That(node.Core.Role, Is.EqualTo(StateRole.Follower));
        Assert.That(node.Core.Term, Is.EqualTo(1UL));
    }
}
