using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport;

namespace EmbeddedRaft.TestSupport;

/// <summary>
/// Wraps a node's transport to write into a deterministic cluster's trace every message delivered
/// to the node, every snapshot it takes (when it begins and once it is saved) and every unreachable
/// report, each line starting with <paramref name="nodePrefix"/> and the node's id ("n2 receive
/// ..."). The replay tests compare two runs' traces (or their hashes) line by line, so a delivery
/// that differs between two runs of one seed shows where they part.
/// </summary>
/// <remarks>Sends pass through untraced: a message is traced once, where it is delivered. Thread-safety is <paramref name="trace"/>'s.</remarks>
/// <param name="inner">The transport every call goes to.</param>
/// <param name="nodePrefix">What a trace line starts with before the node's id ("n" for Raft nodes, "m" for store members).</param>
/// <param name="trace">Where the lines go.</param>
public sealed class TracingTransport(IRaftTransport inner, string nodePrefix, Action<string> trace) : IRaftTransport
{
    /// <inheritdoc />
    public IDisposable Bind(ulong localId, IRaftMessageReceiver receiver) =>
        inner.Bind(localId, new TracingReceiver($"{nodePrefix}{localId}", receiver, trace));

    /// <inheritdoc />
    public void Send(Message message) => inner.Send(message);

    /// <inheritdoc />
    public ValueTask SendSnapshotAsync(Message snapshotMessage, Stream data, CancellationToken cancellationToken) =>
        inner.SendSnapshotAsync(snapshotMessage, data, cancellationToken);

    private sealed class TracingReceiver(string node, IRaftMessageReceiver inner, Action<string> trace) : IRaftMessageReceiver
    {
        public void Receive(Message message)
        {
            trace($"{node} receive {message}");
            inner.Receive(message);
        }

        // Forwarded as one batch, as the production transports hand it over (one inbox item on a
        // RaftNode): tracing must not turn the batched path into the one-message path.
        public void ReceiveBatch(ReadOnlySpan<Message> messages)
        {
            foreach (var message in messages)
            {
                trace($"{node} receive {message}");
            }

            inner.ReceiveBatch(messages);
        }

        public async ValueTask ReceiveSnapshotAsync(Message snapshotMessage, Stream data, CancellationToken cancellationToken)
        {
            trace($"{node} snapshot-begin {snapshotMessage}");
            await inner.ReceiveSnapshotAsync(snapshotMessage, data, cancellationToken);
            trace($"{node} snapshot-saved {snapshotMessage}");
        }

        public void ReportUnreachable(ulong peerId)
        {
            trace($"{node} unreachable {peerId}");
            inner.ReportUnreachable(peerId);
        }
    }
}
