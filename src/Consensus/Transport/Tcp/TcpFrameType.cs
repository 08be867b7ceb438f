namespace EmbeddedRaft.Consensus.Transport.Tcp;

/// <summary>The type byte of a frame (docs/formats.md, "TCP transport frames").</summary>
internal enum TcpFrameType : byte
{
    /// <summary>The connecting side's handshake: protocol version, connection kind, cluster id, sender id, receiver id.</summary>
    Hello = 1,

    /// <summary>The accepting side took the handshake; empty body.</summary>
    HelloAccepted = 2,

    /// <summary>The accepting side refused the handshake; body: the reason, UTF-8. The connection closes after it.</summary>
    Refused = 3,

    /// <summary>A batch of messages: each a varint length and the message in the library's codec.</summary>
    Messages = 4,

    /// <summary>Starts a snapshot transfer: one snapshot message (with metadata) in the library's codec.</summary>
    SnapshotMessage = 5,

    /// <summary>A piece of the snapshot's data.</summary>
    SnapshotChunk = 6,

    /// <summary>The snapshot's data is complete; empty body.</summary>
    SnapshotEnd = 7,

    /// <summary>The receiver's answer to a snapshot: a status byte (0 saved, 1 failed) and a reason, UTF-8.</summary>
    SnapshotAck = 8,

    /// <summary>On a message connection, from the sending side every keep-alive interval; empty body. Protocol version 2.</summary>
    KeepAlive = 9,

    /// <summary>The receiving side's answer to <see cref="KeepAlive"/>; empty body. Protocol version 2.</summary>
    KeepAliveAck = 10,
}
