using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Tests.Support;

namespace EmbeddedRaft.Consensus.Tests.Unit;

/// <summary>PreVote (thesis §9.6) and CheckQuorum (thesis §6.2, §4.2.3) beyond the paper's rules.</summary>
public class ElectionExtensionTests
{
    private static TestNetwork Cluster(bool preVote, bool checkQuorum) =>
        TestNetwork.OfSize(3, id => TestNode.Seeded(id) with { PreVote = preVote, CheckQuorum = checkQuorum, MaxSizePerMessageBytes = ulong.MaxValue });

    [Test]
    public void AFollowerInItsLeaseIgnoresAHigherTermVoteRequestWithoutChangingTerm()
    {
        var net = Cluster(preVote: false, checkQuorum: true);
        net.Campaign(1);

        net[2].Step(new Message { Type = MessageType.Vote, From = 3, To = 2, Term = 5, LogTerm = 1, Index = 1 });

        Assert.That(net[2].ReadMessages(), Is.Empty);
        Assert.That((net[2].Core.Term, net[2].Core.Lead, net[2].Core.Vote), Is.EqualTo((1UL, 1UL, 1UL)));
    }

    [Test]
    public void ATransferCampaignOverridesTheLease()
    {
        var net = Cluster(preVote: false, checkQuorum: true);
        net.Campaign(1);

        net[2].Step(new Message
        {
            Type = MessageType.Vote, From = 3, To = 2, Term = 5, LogTerm = 1, Index = 1, Context = "CampaignTransfer"u8.ToArray(),
        });

        var response = net[2].ReadMessages().Single();
        Assert.That((response.Type, response.Reject, net[2].Core.Term, net[2].Core.Vote), Is.EqualTo((MessageType.VoteResponse, false, 5UL, 3UL)));
    }

    [Test]
    public void APreVoteNeverChangesTheVotersTermOrVote()
    {
        var net = Cluster(preVote: true, checkQuorum: false);
        net.Campaign(1);
        net.Isolate(1);

        net[2].Step(new Message { Type = MessageType.PreVote, From = 3, To = 2, Term = 2, LogTerm = 1, Index = 1 });

        var response = net[2].ReadMessages().Single();
        Assert.That((response.Type, response.Term, response.Reject), Is.EqualTo((MessageType.PreVoteResponse, 2UL, false)));
        Assert.That((net[2].Core.Term, net[2].Core.Vote), Is.EqualTo((1UL, 1UL)));
    }

    [Test]
    public void APartitionedPreCandidateNeverIncreasesItsTerm()
    {
        var net = Cluster(preVote: true, checkQuorum: false);
        net.Campaign(1);
        net.Isolate(3);

        for (var i = 0; i < 200; i++)
        {
            net.Tick(3);
        }

        Assert.That(net[3].Core.Term, Is.EqualTo(1));
        Assert.That(net[3].Core.Role, Is.EqualTo(StateRole.PreCandidate));
    }

    [Test]
    public void WithoutPreVoteAPartitionedNodeDisruptsTheLeaderWhenItReturns()
    {
        // The problem PreVote solves, shown for contrast (Raft thesis §9.6).
        var net = Cluster(preVote: false, checkQuorum: false);
        net.Campaign(1);
        net.Isolate(3);
        for (var i = 0; i < 200; i++)
        {
            net.Tick(3);
        }

        net.Recover();
        for (var i = 0; i < 2 * net[3].Options.ElectionTimeoutTicks; i++)
        {
            net.Tick(3);
        }

        Assert.That(net[3].Core.Term, Is.GreaterThan(2));
        Assert.That(net[1].Core.Term, Is.GreaterThan(2), "the returning node's higher term forced a new election");
    }

    [Test]
    public void ALeaderThatHearsFromNoQuorumForAnElectionTimeoutStepsDown()
    {
        var net = Cluster(preVote: false, checkQuorum: true);
        net.Campaign(1);
        net.Isolate(1);

        for (var i = 0; i < 2 * net[1].Options.ElectionTimeoutTicks; i++)
        {
            net.Tick(1);
        }

        Assert.That(net[1].Core.Role, Is.EqualTo(StateRole.Follower));
        Assert.That(net[1].Core.Term, Is.EqualTo(1), "stepping down does not change the term");
    }

    // Guards the Raft core review's finding 6: transfers do not postpone CheckQuorum.
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

    // Guards the Raft core review's finding 6: transfers do not postpone CheckQuorum.
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
}
