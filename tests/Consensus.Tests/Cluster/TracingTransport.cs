using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport;

namespace EmbeddedRaft.Consensus.Tests.Cluster;

/// <summary>
/// Wraps a node's transport to write every message delivered to it, every snapshot it takes and
/// every unreachable report into the cluster's trace (the deterministic-replay test compares two
/// traces line by line).
/// </summary>
internal sealed class TracingTransport(IRaftTransport inner, Action<string> trace) : IRaftTransport
{
    public IDisposable Bind(ulong localId, IRaftMessageReceiver receiver) =>
        inner.Bind(localId, new TracingReceiver(localId, receiver, trace));

    public void Send(Message message) => inner.Send(message);

    public ValueTask SendSnapshotAsync(Message snapshotMessage, Stream data, CancellationToken cancellationToken) =>
        inner.SendSnapshotAsync(snapshotMessage, data, cancellationToken);

    private sealed class TracingReceiver(ulong localId, IRaftMessageReceiver inner, Action<string> trace) : IRaftMessageReceiver
    {
        public void Receive(Message message)
        {
            trace($"n{localId} receive {message}");
            inner.Receive(message);
        }

        public async ValueTask ReceiveSnapshotAsync(Message snapshotMessage, Stream data, CancellationToken cancellationToken)
        {
            trace($"n{localId} snapshot-begin {snapshotMessage}");
            await inner.ReceiveSnapshotAsync(snapshotMessage, data, cancellationToken);
            trace($"n{localId} snapshot-saved {snapshotMessage}");
        }

        public void ReportUnreachable(ulong peerId)
        {
            trace($"n{localId} unreachable {peerId}");
            inner.ReportUnreachable(peerId);
        }
    }
}
