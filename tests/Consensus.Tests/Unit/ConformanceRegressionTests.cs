using System.Text;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Tests.Scenarios;
using EmbeddedRaft.Consensus.Tests.Support;

namespace EmbeddedRaft.Consensus.Tests.Unit;

/// <summary>
/// Regression tests for issue 10: the three bugs an independent conformance suite found, each
/// reproduced as the suite (and the scripts in Scenarios/testdata) found it.
/// </summary>
public class ConformanceRegressionTests
{
    private static string Run(ScenarioRunner runner, params string[] commands)
    {
        var output = new StringBuilder();
        foreach (var command in commands)
        {
            var result = runner.Run(command);
            Assert.That(result, Does.Not.Contain("error:"), $"'{command}' failed:\n{result}");
            output.Append(result);
        }

        return output.ToString();
    }

    // ---------------------------------------------------------------- 1: snapshot while a Ready with a committed change is outstanding

    /// <summary>
    /// Node 3 takes a Ready whose committed entries hold <paramref name="change"/>, then steps a
    /// snapshot taken after that change (and, when joint, after the automatic leave) before it
    /// applies the Ready. Applying the held change must be well defined, and node 3 must end
    /// with exactly the leader's configuration.
    /// </summary>
    [TestCase("l4", TestName = "ASnapshotSteppedWhileAReadyHoldsACommittedChangeLeavesTheSameConfigurationAsTheLeader(single step)")]
    [TestCase("l4 l5 transition=implicit", TestName = "ASnapshotSteppedWhileAReadyHoldsACommittedChangeLeavesTheSameConfigurationAsTheLeader(joint, auto leave)")]
    [TestCase("l4 l5 transition=explicit", TestName = "ASnapshotSteppedWhileAReadyHoldsACommittedChangeLeavesTheSameConfigurationAsTheLeader(joint, explicit leave)")]
    public void ASnapshotSteppedWhileAReadyHoldsACommittedChangeLeavesTheSameConfigurationAsTheLeader(string change)
    {
        var runner = new ScenarioRunner();
        Run(runner, "add-nodes 3", "campaign 1", "stabilize", "add-node 4", "add-node 5");
        Run(runner, $"propose-conf-change 1 {change}", "process-ready 1", "deliver-msgs 2", "process-ready 2", "deliver-msgs 1", "process-ready 1", "deliver-msgs 3");

        var held = Run(runner, "ready-take 3");
        Assert.That(held, Does.Contain("CommittedEntries: [").And.Contain("ConfChange l4"), "the held Ready commits the change");

        Run(runner, "stabilize 1 2", "propose 1 x", "stabilize 1 2", "deliver-msgs drop 3");
        Run(runner, $"compact 1 {runner.Node(1).AppliedIndex}", "report-unreachable 1 3", "propose 1 y", "process-ready 1");
        var stepped = Run(runner, "deliver-msgs 3");
        Assert.That(stepped, Does.Contain("Snapshot"), "node 3 stepped the snapshot while its Ready was outstanding");

        Run(runner, "ready-finish 3", "stabilize 1 2 3", "stabilize 1 2 3");

        var leader = runner.Node(1);
        var node = runner.Node(3);
        Assert.That(node.Core.Tracker.ToConfState(), Is.EqualTo(leader.Core.Tracker.ToConfState()), "node 3's configuration is the leader's");
        Assert.That(node.Config, Is.EqualTo(leader.Config), "the configuration node 3's host persisted is the leader's");
        Assert.That(node.AppliedIndex, Is.EqualTo(leader.AppliedIndex));
    }

    // ---------------------------------------------------------------- 2: lease reads after the leader is partitioned away

    /// <summary>
    /// Every clock ticks in lockstep and delivery is instant. After the leader is cut off, the
    /// majority elects a new leader and commits every round; every read the old leader answers
    /// must still cover everything committed before it was requested (linearizability).
    /// </summary>
    [Test]
    public void APartitionedLeaderNeverAnswersALeaseReadThatMissesACommittedEntry()
    {
        var runner = new ScenarioRunner();
        Run(runner, "add-nodes 3 lease", "campaign 1", "stabilize", "tick-all 1", "stabilize", "partition 1 | 2 3");

        var answered = 0;
        for (var round = 0; round < 40; round++)
        {
            Run(runner, "tick-all 1", "stabilize 2 3");
            var newLeader = runner.Node(2).Core.Lead;
            if (newLeader is 2 or 3)
            {
                Run(runner, $"propose {newLeader} w{round}", "stabilize 2 3");
            }

            var committedElsewhere = Math.Max(runner.Node(2).Core.Log.Committed, runner.Node(3).Core.Log.Committed);
            var before = runner.Node(1).ReadStates.Count;
            Run(runner, $"read-index 1 r{round}", "process-ready 1");
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

    private static TestNode LeaseFollower()
    {
        var options = TestNode.Seeded(1) with { ElectionTimeoutTicks = 10, CheckQuorum = true, ReadOnlyMode = ReadOnlyMode.LeaseBased };
        var node = Fixtures.NodeWithLog(1, [1, 2, 3], [Fixtures.E(1, 1)], new HardState(1, 0, 1), options);
        node.Step(new Message { Type = MessageType.Heartbeat, From = 2, To = 1, Term = 1, Commit = 1 });
        node.ReadMessages();
        return node;
    }

    private static bool GrantsVote(TestNode node, ulong term)
    {
        node.Step(new Message { Type = MessageType.Vote, From = 3, To = 1, Term = term, Index = 1, LogTerm = 1 });
        return node.ReadMessages().Any(m => m.Type == MessageType.VoteResponse && !m.Reject);
    }

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

    [Test]
    public void AnExplicitCampaignInsideThePromiseDoesNothingInLeaseMode()
    {
        var node = LeaseFollower();
        node.Node.Campaign();
        Assert.That(node.Core.Role, Is.EqualTo(StateRole.Follower));
        Assert.That(node.Core.Term, Is.EqualTo(1UL));
    }

    // ---------------------------------------------------------------- 3: a read on a node whose configuration does not include its leader

    [Test]
    public void ANodeWhoseConfigurationLacksItsLeaderGetsTheAnswerToItsForwardedRead()
    {
        var runner = new ScenarioRunner();
        Run(runner, "add-nodes 3", "campaign 1", "stabilize", "add-node 4", "propose-conf-change 1 l4", "stabilize 1 2 3", "deliver-msgs 4");
        Assert.That(runner.Node(4).Core.Lead, Is.EqualTo(1UL), "the new node follows the leader");
        Assert.That(runner.Node(4).Core.Tracker.Progress.ContainsKey(1), Is.False, "its configuration does not know the leader");

        Run(runner, "read-index 4 r4", "process-ready 4", "stabilize 1 2 3", "deliver-msgs 4", "process-ready 4");

        var state = runner.Node(4).ReadStates.Single();
        Assert.That(Encoding.UTF8.GetString(state.RequestContext.Span), Is.EqualTo("r4"));
        Assert.That(state.Index, Is.EqualTo(runner.Node(1).Core.Log.Committed));
    }

    // ---------------------------------------------------------------- also: the leader's host learns a joining node needs a snapshot

    [Test]
    public void TheLeaderAsksItsHostForASnapshotWhenANodeThatJoinedEmptyNeedsOne()
    {
        var runner = new ScenarioRunner();
        Run(runner, "add-nodes 3", "campaign 1", "stabilize", "add-node 4", "propose-conf-change 1 l4");
        var trace = Run(runner, "stabilize");
        Assert.That(trace, Does.Contain("PeersNeedingSnapshot: 4"), "the empty storage has no snapshot for node 4");
        Assert.That(runner.Node(4).Core.Tracker.Progress.ContainsKey(4), Is.False, "node 4 has no configuration yet");

        // The host answers the request; the leader sends the snapshot on node 4's next heartbeat response.
        Run(runner, $"compact 1 {runner.Node(1).AppliedIndex}", "tick-heartbeat 1", "stabilize");
        Assert.That(runner.Node(4).Config, Is.EqualTo(runner.Node(1).Config), "node 4 joined through the snapshot");
    }
}
