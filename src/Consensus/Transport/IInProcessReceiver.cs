using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Transport;

/// <summary>
/// A receiver that <see cref="InProcessNetwork"/> may hand a perfect link's message on the sender's
/// thread with leave to run the receiver's own work there (<see cref="ReceiveOnSendersThread"/>):
/// RaftNode's, whose loop, when it waits, takes the message in a turn on that thread instead of
/// queueing a turn for a thread-pool thread that must first be woken. Internal: only the in-process
/// network knows that its sender is a node's loop or sync pipeline, which holds no lock while it
/// sends and may be held up by one turn of a peer.
/// </summary>
internal interface IInProcessReceiver : IRaftMessageReceiver
{
    /// <summary>As <see cref="IRaftMessageReceiver.Receive"/>; the receiver may run its turn before this returns.</summary>
    void ReceiveOnSendersThread(Message message);
}
