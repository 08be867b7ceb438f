using System.Text;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Tests.Scenarios;
using EmbeddedRaft.Consensus.Tests.Support;

namespace EmbeddedRaft.Consensus.Tests.Unit;

/// <summary>
/// Read-index requests (Raft thesis §6.4) that travel: forwarded through a former leader, back
/// to a requester that now leads, or from a node whose configuration lacks its leader. The
/// answer must reach the node that asked.
/// </summary>
public class ReadIndexTests
{
    // Guards the Raft core review's finding 7: re-forwarded read requests.
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

    // Guards the Raft core review's finding 7: re-forwarded read requests.
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

    // Guards issue 10's conformance finding 3: a read on a node whose configuration does not include its leader.
    [Test]
    public void ANodeWhoseConfigurationLacksItsLeaderGetsTheAnswerToItsForwardedRead()
    {
        var runner = new ScenarioRunner();
        runner.RunOrFail("add-nodes 3", "campaign 1", "stabilize", "add-node 4", "propose-conf-change 1 l4", "stabilize 1 2 3", "deliver-msgs 4");
        Assert.That(runner.Node(4).Core.Lead, Is.EqualTo(1UL), "the new node follows the leader");
        Assert.That(runner.Node(4).Core.Tracker.Progress.ContainsKey(1), Is.False, "its configuration does not know the leader");

        runner.RunOrFail("read-index 4 r4", "process-ready 4", "stabilize 1 2 3", "deliver-msgs 4", "process-ready 4");

        var state = runner.Node(4).ReadStates.Single();
        Assert.That(Encoding.UTF8.GetString(state.RequestContext.Span), Is.EqualTo("r4"));
        Assert.That(state.Index, Is.EqualTo(runner.Node(1).Core.Log.Committed));
    }
}
