using EmbeddedRaft.Consensus.Membership;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Tests.Scenarios;
using EmbeddedRaft.Consensus.Tests.Support;

namespace EmbeddedRaft.Consensus.Tests.Membership;

/// <summary>Membership behaviour a host relies on, beyond the scenario scripts.</summary>
public class MembershipTests
{
    private static TestNetwork ClusterWithLeader(int size, Func<ulong, RaftOptions>? options = null)
    {
        var network = TestNetwork.OfSize(size, options);
        network.Campaign(1);
        Assert.That(network[1].Core.Role, Is.EqualTo(StateRole.Leader));
        return network;
    }

    private static void ProposeConfChange(TestNetwork network, ulong id, ConfChange change)
    {
        network[id].Node.ProposeConfChange(change);
        network.Deliver(network[id].ReadMessages());
    }

    [Test]
    public void ARestartedNodeResumesWithTheConfigurationPersistedWithItsAppliedIndex()
    {
        var network = ClusterWithLeader(3);
        ProposeConfChange(network, 1, ConfChange.AddLearner(4));
        ProposeConfChange(network, 1, ConfChange.Remove(3));
        var expected = new ConfState([1, 2], learners: [4], removed: [3]);
        Assert.That(network[2].Node.GetStatus().Config, Is.EqualTo(expected));

        network[2].Restart();

        Assert.That(network[2].Node.GetStatus().Config, Is.EqualTo(expected));
        Assert.That(network[2].Storage.InitialState().ConfState, Is.EqualTo(expected));
    }

    [Test]
    public void ASnapshotCarriesTheConfigurationIncludingRemovedIds()
    {
        var network = ClusterWithLeader(3);
        ProposeConfChange(network, 1, ConfChange.Remove(3));
        var leader = network[1];
        leader.Storage.CreateSnapshot(leader.AppliedIndex, leader.Config);

        var restored = new MemoryStorage();
        restored.ApplySnapshot(MessageCodec.DecodeMessage(MessageCodec.Encode(new Message
        {
            Type = MessageType.Snapshot, From = 1, To = 2, Term = 1, Snapshot = leader.Storage.Snapshot(),
        })).Snapshot!);

        Assert.That(restored.InitialState().ConfState, Is.EqualTo(new ConfState([1, 2], removed: [3])));
    }

    [Test]
    public void AForwardedChangeIsValidatedByTheLeaderAndRefusedThereWithTheReason()
    {
        var network = ClusterWithLeader(3);
        network[2].Node.ProposeConfChange(ConfChange.Remove(9));
        var forwarded = network[2].ReadMessages().Single(m => m.Type == MessageType.Propose);

        // The leader's receive path does not throw: the refusal goes back to the proposer.
        network[1].Step(forwarded);
        var refusal = network[1].ReadMessages().Single(m => m.Type == MessageType.ProposalRefused);
        Assert.That(network[1].Core.Log.LastIndex(), Is.EqualTo(1), "nothing appended");

        network[2].Step(refusal);
        network[2].ReadMessages();
        var refused = network[2].Refused.Single();
        var ex = refused.Refusal as ConfChangeRejectedException;
        Assert.That(ex, Is.Not.Null);
        Assert.That(ex!.Reason, Is.EqualTo(ConfChangeRejectReason.InvalidRequest));
        Assert.That(ex.Message, Does.Contain("node 9"));
        Assert.That(refused.LeaderId, Is.EqualTo(1UL));
        Assert.That(MessageCodec.DecodeConfChange(refused.Entries.Span[0].Data.Span).ToString(), Is.EqualTo(ConfChange.Remove(9).ToString()), "the proposal comes back, so the host can match it");
    }

    [Test]
    public void AForwardedProposalTheLeaderDropsIsReportedToTheProposerWithTheReason()
    {
        var network = ClusterWithLeader(3);
        network[1].Node.TransferLeadership(3);
        network[1].ReadMessages();
        network[2].Node.Propose(new byte[] { 42 });
        var forwarded = network[2].ReadMessages().Single(m => m.Type == MessageType.Propose);

        network[1].Step(forwarded);
        var refusal = network[1].ReadMessages().Single(m => m.Type == MessageType.ProposalRefused);
        network[2].Step(refusal);
        network[2].ReadMessages();

        var refused = network[2].Refused.Single();
        Assert.That((refused.Refusal as ProposalDroppedException)?.Reason, Is.EqualTo(ProposalDropReason.LeadershipTransferInProgress));
        Assert.That(refused.Entries.Span[0].Data.ToArray(), Is.EqualTo(new byte[] { 42 }));
    }

    [Test]
    public void ARefusalWithoutTheProposalOrWithAnUnknownReasonIsMalformed()
    {
        var network = ClusterWithLeader(3);
        var entry = new Entry(new byte[] { 1 });
        foreach (var (entries, code) in new[] { (Array.Empty<Entry>(), 0x101UL), (new[] { entry }, 0x1FFUL), (new[] { entry }, 0x901UL) })
        {
            var ex = Assert.Throws<MessageRejectedException>(() =>
                network[2].Step(new Message { Type = MessageType.ProposalRefused, From = 1, To = 2, Term = 1, Reject = true, RejectHint = code, Entries = entries }));
            Assert.That(ex!.Reason, Is.EqualTo(MessageRejectReason.Malformed));
        }
    }

    [Test]
    public void AProposalWithTwoConfigurationChangesOrAnUndecodableOneIsMalformed()
    {
        var network = ClusterWithLeader(3);
        var change = new Entry(0, 0, EntryType.ConfChange, MessageCodec.EncodeConfChange(ConfChange.AddLearner(4)));
        var garbage = new Entry(0, 0, EntryType.ConfChange, new byte[] { MessageCodec.Version, 7 });

        foreach (var entries in new[] { new[] { change, change }, new[] { garbage } })
        {
            var ex = Assert.Throws<MessageRejectedException>(() =>
                network[1].Step(new Message { Type = MessageType.Propose, From = 2, To = 1, Entries = entries }));
            Assert.That(ex!.Reason, Is.EqualTo(MessageRejectReason.Malformed));
        }

        Assert.That(network[1].Core.Log.LastIndex(), Is.EqualTo(1));
    }

    [Test]
    public void WithoutStepDownOnRemovalTheRemovedLeaderKeepsReplicatingWithoutCountingItselfAndRefusesProposals()
    {
        var network = ClusterWithLeader(3, id => TestNode.Seeded(id) with { StepDownOnRemoval = false, MaxSizePerMessageBytes = ulong.MaxValue });
        ProposeConfChange(network, 1, ConfChange.Remove(1));
        Assert.That(network[1].Core.Role, Is.EqualTo(StateRole.Leader), "etcd-io/raft's default behaviour");

        var ex = Assert.Throws<ProposalDroppedException>(() => network[1].Node.Propose("x"u8.ToArray()));
        Assert.That(ex!.Reason, Is.EqualTo(ProposalDropReason.NotInConfiguration));

        // It keeps heartbeating the remaining voters, which therefore never elect a new leader:
        // the stuck cluster of etcd-io/etcd#11038 that StepDownOnRemoval (on by default) avoids.
        network[1].Node.Tick();
        var heartbeats = network[1].ReadMessages().Where(m => m.Type == MessageType.Heartbeat).Select(m => m.To);
        Assert.That(heartbeats, Is.EquivalentTo(new ulong[] { 2, 3 }));
    }

    [Test]
    public void ALeaderCountsItselfOnlyWhileItIsAVoter()
    {
        // Joint (2 3 4)&&(1 2 3): the leader 1 counts in the outgoing half only.
        var network = ClusterWithLeader(3);
        network.Nodes[4] = new TestNode(TestNode.DefaultOptions(4), new MemoryStorage());
        ProposeConfChange(network, 1, new ConfChange([new(ConfChangeType.RemoveNode, 1), new(ConfChangeType.AddVoter, 4)], ConfChangeTransition.JointExplicit));
        Assert.That(network[1].Config.IsJoint, Is.True);
        var before = network[1].Core.Log.Committed;

        // 1 and 2 are a majority of (1 2 3) but not of (2 3 4): nothing commits.
        network.Isolate(3);
        network.Isolate(4);
        network.Propose(1, "x");

        Assert.That(network[1].Core.Log.Committed, Is.EqualTo(before));
    }

    [Test]
    public void ALearnerIsNeverPromotableAndNeverCountedInTheVote()
    {
        var network = ClusterWithLeader(3);
        ProposeConfChange(network, 1, ConfChange.Demote(3));
        Assert.That(network[3].Config, Is.EqualTo(new ConfState([1, 2], learners: [3])));

        for (var i = 0; i < 100; i++)
        {
            network[3].Node.Tick();
        }

        Assert.That(network[3].Core.Promotable, Is.False);
        Assert.That(network[3].Core.Role, Is.EqualTo(StateRole.Follower));
        Assert.That(network[3].ReadMessages().Where(m => m.Type is MessageType.Vote or MessageType.PreVote), Is.Empty);
    }

    [Test]
    public void AnAppendCarryingAnUndecodableConfigurationChangeIsRefusedBeforeAnyStateChange()
    {
        var network = ClusterWithLeader(3);
        var follower = network[2];
        var before = (follower.Core.Term, follower.Core.Log.LastIndex(), follower.Core.Log.Committed);
        var garbage = new Entry(1, 2, EntryType.ConfChange, new byte[] { MessageCodec.Version, 0, 1, 0 });

        var ex = Assert.Throws<MessageRejectedException>(() => follower.Step(new Message
        {
            Type = MessageType.Append, From = 1, To = 2, Term = 1, Index = 1, LogTerm = 1, Entries = new[] { garbage },
        }));

        Assert.That(ex!.Reason, Is.EqualTo(MessageRejectReason.Malformed));
        Assert.That((follower.Core.Term, follower.Core.Log.LastIndex(), follower.Core.Log.Committed), Is.EqualTo(before));
    }

    [Test]
    public void ConfigurationChangesDoNotCountAgainstTheUncommittedQuotaSoTheAutomaticLeaveIsNeverRefused()
    {
        var network = ClusterWithLeader(3, id => TestNode.Seeded(id) with { MaxUncommittedEntriesBytes = 1, MaxSizePerMessageBytes = ulong.MaxValue });

        // Fill the quota with an uncommitted proposal (3 is cut off, 2 does not answer yet).
        network.Isolate(2);
        network.Isolate(3);
        network.Propose(1, "fills the quota");
        Assert.Throws<ProposalDroppedException>(() => network[1].Node.Propose("x"u8.ToArray()));

        // A configuration change is still accepted; once the cluster heals the joint state is
        // entered and left automatically.
        network[1].Node.ProposeConfChange(ConfChange.Demote(3));
        network.Recover();
        network.Deliver(network[1].ReadMessages());
        network.Tick(1);
        network.Tick(1);

        Assert.That(network[1].Config, Is.EqualTo(new ConfState([1, 2], learners: [3])));
    }

    // Guards issue 10's conformance finding 1: snapshot while a Ready with a committed change is outstanding.
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
        runner.RunOrFail("add-nodes 3", "campaign 1", "stabilize", "add-node 4", "add-node 5");
        runner.RunOrFail($"propose-conf-change 1 {change}", "process-ready 1", "deliver-msgs 2", "process-ready 2", "deliver-msgs 1", "process-ready 1", "deliver-msgs 3");

        var held = runner.RunOrFail("ready-take 3");
        Assert.That(held, Does.Contain("CommittedEntries: [").And.Contain("ConfChange l4"), "the held Ready commits the change");

        runner.RunOrFail("stabilize 1 2", "propose 1 x", "stabilize 1 2", "deliver-msgs drop 3");
        runner.RunOrFail($"compact 1 {runner.Node(1).AppliedIndex}", "report-unreachable 1 3", "propose 1 y", "process-ready 1");
        var stepped = runner.RunOrFail("deliver-msgs 3");
        Assert.That(stepped, Does.Contain("Snapshot"), "node 3 stepped the snapshot while its Ready was outstanding");

        runner.RunOrFail("ready-finish 3", "stabilize 1 2 3", "stabilize 1 2 3");

        var leader = runner.Node(1);
        var node = runner.Node(3);
        Assert.That(node.Core.Tracker.ToConfState(), Is.EqualTo(leader.Core.Tracker.ToConfState()), "node 3's configuration is the leader's");
        Assert.That(node.Config, Is.EqualTo(leader.Config), "the configuration node 3's host persisted is the leader's");
        Assert.That(node.AppliedIndex, Is.EqualTo(leader.AppliedIndex));
    }

    [Test]
    public void TheLeaderAsksItsHostForASnapshotWhenANodeThatJoinedEmptyNeedsOne()
    {
        var runner = new ScenarioRunner();
        runner.RunOrFail("add-nodes 3", "campaign 1", "stabilize", "add-node 4", "propose-conf-change 1 l4");
        var trace = runner.RunOrFail("stabilize");
        Assert.That(trace, Does.Contain("PeersNeedingSnapshot: 4"), "the empty storage has no snapshot for node 4");
        Assert.That(runner.Node(4).Core.Tracker.Progress.ContainsKey(4), Is.False, "node 4 has no configuration yet");

        // The host answers the request; the leader sends the snapshot on node 4's next heartbeat response.
        runner.RunOrFail($"compact 1 {runner.Node(1).AppliedIndex}", "tick-heartbeat 1", "stabilize");
        Assert.That(runner.Node(4).Config, Is.EqualTo(runner.Node(1).Config), "node 4 joined through the snapshot");
    }
}
