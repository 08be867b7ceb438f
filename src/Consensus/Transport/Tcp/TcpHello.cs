namespace EmbeddedRaft.Consensus.Transport.Tcp;

/// <summary>The handshake a connecting node sends first on every connection.</summary>
internal readonly record struct TcpHello(byte Version, TcpConnectionKind Kind, ulong ClusterId, ulong SenderId, ulong ReceiverId);
