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

    /// <summary>
    /// Completes once the node's newest snapshot (taken, or installed from a leader) is at or above
    /// <paramref name="index"/> (<c>RaftNode.WaitForSnapshotAsync</c>): a wait on the node's own
    /// signal, for the tests that would otherwise poll <see cref="RaftNode{TResult}.Status"/>. The
    /// node has no public notification of a snapshot; this reaches the internal one for tests only.
    /// Fails with the node's <see cref="NodeStoppedException"/> when it stops first (as its pending
    /// proposals do); still bound it, since a snapshot may simply never come.
    /// </summary>
    public static Task WaitForSnapshotAsync<TResult>(RaftNode<TResult> node, ulong index)
    {
        ArgumentNullException.ThrowIfNull(node);
        return node.WaitForSnapshotAsync(index);
    }
}
