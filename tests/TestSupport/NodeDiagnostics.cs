using EmbeddedRaft.Consensus.Host;

namespace EmbeddedRaft.TestSupport;

/// <summary>
/// A <see cref="RaftNode{TResult}"/>'s internal picture of what it waits on, for the failure
/// messages of test projects that do not see the node's internals (the MVCC tests' clusters).
/// </summary>
public static class NodeDiagnostics
{
    /// <summary>The node's tick, pipelines and waiting proposals now (<c>RaftNode.DescribeWaits</c>): a moment's approximation, for a message only.</summary>
    public static string DescribeWaits<TResult>(RaftNode<TResult> node)
    {
        ArgumentNullException.ThrowIfNull(node);
        return node.DescribeWaits();
    }
}
