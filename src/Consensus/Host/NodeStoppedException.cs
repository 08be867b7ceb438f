namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// The node has stopped for good: it was disposed (<see cref="Cause"/> null), or it failed
/// (fail-stop) — a write or fsync of its log failed, its state machine threw, or an invariant
/// broke — and <see cref="Cause"/> says what. Every call pending at that moment and every later
/// call fails with it. A proposal pending when the node stopped may or may not have been applied
/// on other nodes.
/// </summary>
public sealed class NodeStoppedException : Exception
{
    internal NodeStoppedException(ulong nodeId, Exception? cause)
        : base(cause is null
            ? $"Node {nodeId} was disposed."
            : $"Node {nodeId} stopped for good after a failure: {cause.GetType().Name}: {cause.Message}", cause)
    {
        Cause = cause;
    }

    /// <summary>The failure that stopped the node, or null when it was disposed.</summary>
    public Exception? Cause { get; }
}
