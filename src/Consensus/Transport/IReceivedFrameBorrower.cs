using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Transport;

/// <summary>
/// A receiver that takes received frames' copies on loan: the TCP transport copies frames into
/// arrays of <see cref="FramePool"/> and hands them over with their messages, and the receiver
/// returns each array once nothing it holds reads it. RaftNode's receiver is the only one; every
/// other <see cref="IRaftMessageReceiver"/> keeps the public contract (a received message's bytes are
/// never reused, so it may be held forever).
/// </summary>
/// <remarks>
/// What the transport lends: only a frame whose byte fields are all entry data of
/// <see cref="MessageType.Append"/> messages (no context, no other message with bytes), so the
/// borrower can tell when it is free from entry indexes alone. Any other frame's array is never
/// returned (the collector takes it). Thread-safety as for <see cref="IRaftMessageReceiver"/>.
/// </remarks>
internal interface IReceivedFrameBorrower : IRaftMessageReceiver
{
    /// <summary>Where the transport rents the arrays it lends to this receiver.</summary>
    ReceivedFramePool FramePool { get; }

    /// <summary>
    /// Whether the receiver can give frames back now (RaftNode: while it is a follower). The transport
    /// reads it once per read, before renting: while it is false, frame copies are new arrays, as for
    /// a receiver that does not borrow, rather than pooled arrays the receiver would only forget. A
    /// hint, and may be stale by the time the frames arrive: the receiver still decides when they do
    /// (a rented frame it cannot take back is forgotten, one it could have taken is merely not pooled).
    /// </summary>
    bool CanBorrowFrames { get; }

    /// <summary>
    /// Like <see cref="IRaftMessageReceiver.ReceiveBatch"/>, with the arrays <paramref name="frames"/>
    /// that some of <paramref name="messages"/> slice: from here the receiver owns them (it returns
    /// them to <see cref="FramePool"/>, or leaves them to the collector). Both spans are valid only
    /// during the call.
    /// </summary>
    void ReceiveBatch(ReadOnlySpan<Message> messages, ReadOnlySpan<LentFrame> frames);
}
