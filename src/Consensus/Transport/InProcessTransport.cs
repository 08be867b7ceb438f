using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Transport;

/// <summary>One node's end of an <see cref="InProcessNetwork"/>: what it sends leaves from <see cref="NodeId"/>.</summary>
internal sealed class InProcessTransport(InProcessNetwork network, ulong nodeId) : IRaftTransport
{
    public ulong NodeId { get; } = nodeId;

    public IDisposable Bind(ulong localId, IRaftMessageReceiver receiver)
    {
        ArgumentNullException.ThrowIfNull(receiver);
        if (localId != NodeId)
        {
            throw new ArgumentException($"This transport serves node {NodeId}, not node {localId}.", nameof(localId));
        }

        return network.Bind(localId, receiver);
    }

    public void Send(Message message)
    {
        ArgumentNullException.ThrowIfNull(message);
        network.Send(NodeId, message);
    }

    public ValueTask SendSnapshotAsync(Message snapshotMessage, Stream data, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(snapshotMessage);
        ArgumentNullException.ThrowIfNull(data);
        if (snapshotMessage.Type != MessageType.Snapshot || snapshotMessage.Snapshot is null)
        {
            throw new ArgumentException($"Expected a {nameof(MessageType.Snapshot)} message with snapshot metadata, got {snapshotMessage}.", nameof(snapshotMessage));
        }

        return network.SendSnapshotAsync(NodeId, snapshotMessage, data, cancellationToken);
    }
}
