using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Transport;

/// <summary>
/// The local node's side of a transport: what an <see cref="IRaftTransport"/> calls when traffic
/// arrives. Implemented by the Raft host (RaftNode binds an adapter of its own); a transport
/// implementation only calls it.
/// </summary>
/// <remarks>
/// Thread-safety: a transport may call every member from any thread, concurrently.
/// <see cref="Receive"/>, <see cref="ReceiveBatch"/> and <see cref="ReportUnreachable"/> must not
/// block: they hand the fact to the node's loop and return.
/// </remarks>
public interface IRaftMessageReceiver
{
    /// <summary>Hands an inbound message to the node. Non-blocking: queues it for the node's loop.</summary>
    void Receive(Message message);

    /// <summary>
    /// Hands several inbound messages to the node at once, in the order they arrived (the messages of
    /// the TCP frames one read brought in, or the messages a network releases together), so a receiver can queue them as one
    /// item instead of one per message. Non-blocking, like <see cref="Receive"/>.
    /// </summary>
    /// <param name="messages">
    /// The messages, in order. The span is valid only during the call (a transport reuses it); the
    /// messages themselves are immutable and may be kept.
    /// </param>
    /// <remarks>
    /// The default calls <see cref="Receive"/> for each message in order, so a receiver written
    /// for one message at a time needs no change; override it to take the batch in one step.
    /// </remarks>
    void ReceiveBatch(ReadOnlySpan<Message> messages)
    {
        foreach (var message in messages)
        {
            Receive(message);
        }
    }

    /// <summary>
    /// Takes an inbound snapshot: saves <paramref name="data"/> durably (read to its end, in
    /// chunks as it arrives), then steps <paramref name="snapshotMessage"/> into the node. The
    /// returned task completes when the data is durable; the sender learns the outcome from it.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    ValueTask ReceiveSnapshotAsync(Message snapshotMessage, Stream data, CancellationToken cancellationToken);

    /// <summary>Tells the node that <paramref name="peerId"/> could not be reached (a cut link, a stopped peer).</summary>
    void ReportUnreachable(ulong peerId);
}
