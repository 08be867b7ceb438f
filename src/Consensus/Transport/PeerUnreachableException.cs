namespace EmbeddedRaft.Consensus.Transport;

/// <summary>
/// A transport could not reach a peer: the link is cut, the peer is not running, or the connection
/// was lost during a transfer. Raft retries on its own; a host reports the failed snapshot and moves on.
/// </summary>
public sealed class PeerUnreachableException : Exception
{
    /// <summary>Creates the exception for <paramref name="peerId"/>, saying why in <paramref name="reason"/>.</summary>
    public PeerUnreachableException(ulong peerId, string reason)
        : base($"Peer {peerId} is unreachable: {reason}")
    {
        PeerId = peerId;
    }

    /// <summary>The peer that could not be reached.</summary>
    public ulong PeerId { get; }
}
