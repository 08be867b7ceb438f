using System.Net;
using EmbeddedRaft.Consensus.Messages;
using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Consensus.Transport.Tcp;

/// <summary>What a <see cref="TcpTransport"/> logs, as source-generated messages (nothing evaluated when the level is off).</summary>
internal static partial class TcpTransportLog
{
    [LoggerMessage(Level = LogLevel.Information, Message = "Node {NodeId}: TCP transport listening on {EndPoint} (cluster {ClusterId}, TLS {Tls}).")]
    public static partial void Listening(ILogger logger, ulong nodeId, EndPoint endPoint, ulong clusterId, bool tls);

    [LoggerMessage(Level = LogLevel.Information, Message = "Node {NodeId}: TCP transport stopped.")]
    public static partial void Stopped(ILogger logger, ulong nodeId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Node {NodeId}: peer {PeerId} is at {Address}.")]
    public static partial void PeerAddress(ILogger logger, ulong nodeId, ulong peerId, string address);

    [LoggerMessage(Level = LogLevel.Information, Message = "Node {NodeId}: peer {PeerId} removed.")]
    public static partial void PeerRemoved(ILogger logger, ulong nodeId, ulong peerId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Node {NodeId}: connected to peer {PeerId} at {Address} (reconnect: {Reconnect}).")]
    public static partial void Connected(ILogger logger, ulong nodeId, ulong peerId, EndPoint address, bool reconnect);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Node {NodeId}: cannot send to peer {PeerId} at {Address}; retrying with backoff.")]
    public static partial void SendPathDown(ILogger logger, Exception exception, ulong nodeId, ulong peerId, EndPoint address);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Node {NodeId}: dropped a {Type} message of {Bytes} bytes to peer {PeerId}: over MaxFrameSizeBytes ({MaxBytes}).")]
    public static partial void Oversize(ILogger logger, ulong nodeId, MessageType type, int bytes, ulong peerId, int maxBytes);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Node {NodeId}: refused a TLS connection from {Remote}.")]
    public static partial void TlsRefused(ILogger logger, Exception exception, ulong nodeId, EndPoint? remote);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Node {NodeId}: refused a connection from {Remote} claiming to be node {PeerId} of cluster {ClusterId}: {Reason}.")]
    public static partial void HandshakeRefused(ILogger logger, ulong nodeId, EndPoint? remote, ulong peerId, ulong clusterId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Node {NodeId}: closed the connection from peer {PeerId} ({Remote}) for a bad frame.")]
    public static partial void BadFrame(ILogger logger, Exception exception, ulong nodeId, ulong peerId, EndPoint? remote);

    [LoggerMessage(Level = LogLevel.Information, Message = "Node {NodeId}: the connection from peer {PeerId} ({Remote}) ended.")]
    public static partial void InboundEnded(ILogger logger, Exception exception, ulong nodeId, ulong peerId, EndPoint? remote);

    [LoggerMessage(Level = LogLevel.Information, Message = "Node {NodeId}: saved snapshot {Index} ({Bytes} bytes) from peer {PeerId}.")]
    public static partial void SnapshotSaved(ILogger logger, ulong nodeId, ulong index, long bytes, ulong peerId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Node {NodeId}: saving snapshot {Index} from peer {PeerId} failed.")]
    public static partial void SnapshotSaveFailed(ILogger logger, Exception exception, ulong nodeId, ulong index, ulong peerId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Node {NodeId}: sent snapshot {Index} ({Bytes} bytes) to peer {PeerId}.")]
    public static partial void SnapshotSent(ILogger logger, ulong nodeId, ulong index, long bytes, ulong peerId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Node {NodeId}: snapshot {Index} to peer {PeerId} failed after {Bytes} bytes.")]
    public static partial void SnapshotSendFailed(ILogger logger, Exception exception, ulong nodeId, ulong index, ulong peerId, long bytes);

    [LoggerMessage(Level = LogLevel.Error, Message = "Node {NodeId}: the receiver threw taking a message from the transport.")]
    public static partial void ReceiverFailed(ILogger logger, Exception exception, ulong nodeId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Node {NodeId}: accepting a connection failed.")]
    public static partial void AcceptFailed(ILogger logger, Exception exception, ulong nodeId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Node {NodeId}: refused a connection from {Remote}: {Open} accepted connections are open, the limit (MaxInboundConnections). Further refusals are counted, not logged, until a connection is accepted again.")]
    public static partial void InboundLimit(ILogger logger, ulong nodeId, EndPoint? remote, int open);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Node {NodeId}: the message connection {Direction} peer {PeerId} ({Remote}) was silent for {Seconds} s (KeepAliveTimeout): closed as dead.")]
    public static partial void KeepAliveTimedOut(ILogger logger, ulong nodeId, string direction, ulong peerId, EndPoint? remote, double seconds);
}
