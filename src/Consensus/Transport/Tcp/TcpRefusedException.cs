namespace EmbeddedRaft.Consensus.Transport.Tcp;

/// <summary>The peer refused this node's handshake (wrong cluster, unknown sender, not the intended receiver).</summary>
internal sealed class TcpRefusedException(ulong peerId, string reason) : Exception($"Peer {peerId} refused the connection: {reason}")
{
    public string Reason { get; } = reason;
}
