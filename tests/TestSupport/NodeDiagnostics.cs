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

    /// <summary>Frames the node borrowed from its TCP transport and gave back so far (<c>RaftNode.ReceivedFramesReturned</c>).</summary>
    public static long ReceivedFramesReturned<TResult>(RaftNode<TResult> node)
    {
        ArgumentNullException.ThrowIfNull(node);
        return node.ReceivedFramesReturned;
    }

    /// <summary>Frame arrays the node's transport rented that had been given back before, i.e. reused (<c>RaftNode.ReceivedFramesReused</c>).</summary>
    public static long ReceivedFramesReused<TResult>(RaftNode<TResult> node)
    {
        ArgumentNullException.ThrowIfNull(node);
        return node.ReceivedFramesReused;
    }
}
