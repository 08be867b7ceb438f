using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Transport;

/// <summary>
/// How a Raft host reaches its peers: sends messages to a peer id, streams snapshots, and hands
/// inbound traffic to the local node through the <see cref="IRaftMessageReceiver"/> it bound.
/// The host's to implement (TCP, gRPC, a message bus); <see cref="InProcessNetwork"/> is the
/// one-process implementation for tests and samples.
/// </summary>
/// <remarks>
/// <para>
/// Raft tolerates loss, duplication and reordering of messages, so a transport may drop any
/// message (a full queue, a broken connection); it must never block the caller, because the caller
/// is the node's single loop. A transport that learns a peer is unreachable says so with
/// <see cref="IRaftMessageReceiver.ReportUnreachable"/> so the leader stops pipelining to it.
/// </para>
/// <para>
/// Thread-safety: <see cref="Send"/> and <see cref="SendSnapshotAsync"/> may be called from any
/// thread, concurrently; implementations must be thread-safe.
/// </para>
/// </remarks>
public interface IRaftTransport
{
    /// <summary>
    /// Registers the local node: inbound messages for <paramref name="localId"/> go to
    /// <paramref name="receiver"/> from now on. Called once by the node when it starts; disposing the
    /// returned registration unbinds it (the node does so when it is disposed), after which inbound
    /// messages for it are dropped.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="receiver"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="localId"/> is not the id this transport serves.</exception>
    /// <exception cref="InvalidOperationException">A receiver is already bound for <paramref name="localId"/>.</exception>
    IDisposable Bind(ulong localId, IRaftMessageReceiver receiver);

    /// <summary>
    /// Sends <paramref name="message"/> to <see cref="Message.To"/>. Never blocks; may drop the
    /// message. Messages are immutable, so the transport may hold on to them.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="message"/> is null.</exception>
    void Send(Message message);

    /// <summary>
    /// Streams a snapshot to <c>snapshotMessage.To</c>: the message (of type
    /// <see cref="MessageType.Snapshot"/>) and the snapshot's data, read from
    /// <paramref name="data"/> in chunks, never buffered whole. Completes once the receiver has
    /// saved the data durably and taken the message (its
    /// <see cref="IRaftMessageReceiver.ReceiveSnapshotAsync"/> returned); the node then reports the
    /// outcome to its Raft core. The caller keeps ownership of <paramref name="data"/>.
    /// </summary>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="snapshotMessage"/> is not a snapshot message with metadata.</exception>
    /// <exception cref="PeerUnreachableException">The peer cannot be reached, or was lost during the transfer.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    /// <remarks>Any exception the receiver throws while saving is thrown here too.</remarks>
    ValueTask SendSnapshotAsync(Message snapshotMessage, Stream data, CancellationToken cancellationToken);
}
