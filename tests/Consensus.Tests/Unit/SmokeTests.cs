using EmbeddedRaft.Consensus.Tests.Support;

namespace EmbeddedRaft.Consensus.Tests.Unit;

public class ClusterSmokeTests
{
    [Test]
    public void ThreeNodesElectALeaderAndCommitAProposalEverywhere()
    {
        var net = TestNetwork.OfSize(3);
        net.Campaign(1);
        Assert.That(net[1].Core.Role, Is.EqualTo(StateRole.Leader));

        net.Propose(1, "hello");
        foreach (var node in net.Nodes.Values)
        {
            Assert.That(node.Core.Log.Committed, Is.EqualTo(2), $"node {node.Id}");
            Assert.That(node.Applied.Select(e => System.Text.Encoding.UTF8.GetString(e.Data.Span)).Last(), Is.EqualTo("hello"));
        }
    }
}
