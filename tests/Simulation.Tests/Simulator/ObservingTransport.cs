using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport;

namespace EmbeddedRaft.Simulation.Tests.Simulator;

/// <summary>
/// A member's transport that shows every message the member sends to the simulation (the Raft
/// safety observer and the trace) before handing it to the in-process network.
/// </summary>
internal sealed class ObservingTransport(IRaftTransport inner, Action<Message> onSend) : IRaftTransport
{
    public IDisposable Bind(ulong localId, IRaftMessageReceiver receiver) => inner.Bind(localId, receiver);

    public void Send(Message message)
    {
        onSend(message);
        inner.Send(message);
    }

    public ValueTask SendSnapshotAsync(Message snapshotMessage, Stream data, CancellationToken cancellationToken)
    {
        onSend(snapshotMessage);
        return inner.SendSnapshotAsync(snapshotMessage, data, cancellationToken);
    }
}
