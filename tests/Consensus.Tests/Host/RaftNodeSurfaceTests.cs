using System.Reflection;
using EmbeddedRaft.Consensus.Host;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>The host's public surface stays small: the node's exceptions carry facts only it can state, and its helpers are internal.</summary>
[TestFixture]
public sealed class RaftNodeSurfaceTests
{
    [Test]
    public void TheNodesExceptionsCannotBeCreatedByUsers()
    {
        foreach (var type in new[] { typeof(NoLeaderException), typeof(NodeStoppedException), typeof(CommittedBatch), typeof(RaftNodeStatus) })
        {
            Assert.That(type.GetConstructors(BindingFlags.Public | BindingFlags.Instance), Is.Empty, type.Name);
        }
    }

    [Test]
    public void OnlyTheContractTypesOfTheHostArePublic()
    {
        var exported = typeof(RaftNode<>).Assembly.GetExportedTypes().Where(t => t.Namespace == "EmbeddedRaft.Consensus.Host").Select(t => t.Name).Order();

        Assert.That(exported, Is.EqualTo(new[]
        {
            "CommittedBatch", "CommittedCommand", "IDurableStateMachine`1", "IStateMachine`1", "IStateMachineSnapshot", "LeaderChange",
            "NodeStoppedException", "NoLeaderException", "RaftNode`1", "RaftNodeOptions", "RaftNodeStatus",
        }.Order()));
    }
}
