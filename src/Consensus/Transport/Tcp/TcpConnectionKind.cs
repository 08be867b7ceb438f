namespace EmbeddedRaft.Consensus.Transport.Tcp;

/// <summary>What a connection carries, named in its handshake.</summary>
internal enum TcpConnectionKind : byte
{
    /// <summary>A stream of message batches from the sender to the receiver (one per direction per peer pair).</summary>
    Messages = 1,

    /// <summary>One snapshot transfer, then closed.</summary>
    Snapshot = 2,
}
