using System.Diagnostics.Metrics;

namespace EmbeddedRaft.Consensus.Transport.Tcp;

/// <summary>
/// The transport's instruments on the meter <see cref="MeterName"/> (tag <c>node.id</c> on the
/// meter), each measurement tagged <c>peer.id</c> (0 when the peer is not known yet, as for a TLS
/// failure before the handshake): bytes and messages sent and received, dropped messages (tag
/// <c>reason</c>), connections (re)established, handshake, TLS and frame failures. The same counts
/// are kept in plain fields for tests and the benchmark.
/// </summary>
internal sealed class TcpTransportMetrics : IDisposable
{
    public const string MeterName = "EmbeddedRaft.Consensus";
    public const string PeerIdTag = "peer.id";

    private readonly Meter _meter;
    private readonly Counter<long> _bytesSent;
    private readonly Counter<long> _bytesReceived;
    private readonly Counter<long> _messagesSent;
    private readonly Counter<long> _messagesReceived;
    private readonly Counter<long> _messagesDropped;
    private readonly Counter<long> _connects;
    private readonly Counter<long> _handshakeFailures;
    private readonly Counter<long> _tlsFailures;
    private readonly Counter<long> _frameErrors;
    private readonly Counter<long> _snapshots;
    private readonly Counter<long> _connectionsRefused;
    private readonly Counter<long> _keepAliveTimeouts;

    private long _bytesSentTotal;
    private long _bytesReceivedTotal;
    private long _messagesSentTotal;
    private long _messagesReceivedTotal;
    private long _messagesDroppedTotal;
    private long _connectsTotal;
    private long _reconnectsTotal;
    private long _handshakeFailuresTotal;
    private long _tlsFailuresTotal;
    private long _frameErrorsTotal;
    private long _snapshotsSentTotal;
    private long _snapshotsFailedTotal;
    private long _snapshotsReceivedTotal;
    private long _connectionsRefusedTotal;
    private long _keepAliveTimeoutsTotal;
    private long _keepAliveAcksTotal;
    private long _flushesTotal;

    public TcpTransportMetrics(ulong nodeId)
    {
        _meter = new Meter(new MeterOptions(MeterName) { Tags = [new("node.id", (long)nodeId)] });
        _bytesSent = _meter.CreateCounter<long>("embeddedraft.transport.bytes_sent", "By", "Bytes written to peers (frames, headers included).");
        _bytesReceived = _meter.CreateCounter<long>("embeddedraft.transport.bytes_received", "By", "Bytes of whole frames read from peers.");
        _messagesSent = _meter.CreateCounter<long>("embeddedraft.transport.messages_sent", "{message}", "Messages written to peers.");
        _messagesReceived = _meter.CreateCounter<long>("embeddedraft.transport.messages_received", "{message}", "Messages read from peers and handed to the node.");
        _messagesDropped = _meter.CreateCounter<long>("embeddedraft.transport.messages_dropped", "{message}", "Messages dropped (tag reason: queue_full, disconnected, oversize, no_address, stopped, unbound).");
        _connects = _meter.CreateCounter<long>("embeddedraft.transport.connects", "{connection}", "Message connections established to a peer (tag reconnect: true after the first).");
        _handshakeFailures = _meter.CreateCounter<long>("embeddedraft.transport.handshake_failures", "{connection}", "Handshakes refused, by this node or by the peer.");
        _tlsFailures = _meter.CreateCounter<long>("embeddedraft.transport.tls_failures", "{connection}", "TLS handshakes that failed (no or untrusted certificate, protocol error).");
        _frameErrors = _meter.CreateCounter<long>("embeddedraft.transport.frame_errors", "{connection}", "Connections closed for a bad frame (tag reason: oversize, malformed, stalled, unexpected).");
        _snapshots = _meter.CreateCounter<long>("embeddedraft.transport.snapshots", "{snapshot}", "Snapshot transfers (tag outcome: sent, send_failed, received).");
        _connectionsRefused = _meter.CreateCounter<long>("embeddedraft.transport.connections_refused", "{connection}", "Accepted connections closed at once because MaxInboundConnections were open.");
        _keepAliveTimeouts = _meter.CreateCounter<long>("embeddedraft.transport.keepalive_timeouts", "{connection}", "Message connections closed as dead: silent for KeepAliveTimeout (tag direction: outbound, inbound).");
    }

    public long BytesSent => Interlocked.Read(ref _bytesSentTotal);

    public long BytesReceived => Interlocked.Read(ref _bytesReceivedTotal);

    public long MessagesSent => Interlocked.Read(ref _messagesSentTotal);

    public long MessagesReceived => Interlocked.Read(ref _messagesReceivedTotal);

    public long MessagesDropped => Interlocked.Read(ref _messagesDroppedTotal);

    public long Connects => Interlocked.Read(ref _connectsTotal);

    public long Reconnects => Interlocked.Read(ref _reconnectsTotal);

    public long HandshakeFailures => Interlocked.Read(ref _handshakeFailuresTotal);

    public long TlsFailures => Interlocked.Read(ref _tlsFailuresTotal);

    public long FrameErrors => Interlocked.Read(ref _frameErrorsTotal);

    public long ConnectionsRefused => Interlocked.Read(ref _connectionsRefusedTotal);

    public long KeepAliveTimeouts => Interlocked.Read(ref _keepAliveTimeoutsTotal);

    /// <summary>Keep-alive answers received on outbound message connections (no instrument: for tests).</summary>
    public long KeepAliveAcks => Interlocked.Read(ref _keepAliveAcksTotal);

    public void ConnectionRefused()
    {
        Interlocked.Increment(ref _connectionsRefusedTotal);
        _connectionsRefused.Add(1);
    }

    public void KeepAliveTimedOut(ulong peer, bool outbound)
    {
        Interlocked.Increment(ref _keepAliveTimeoutsTotal);
        _keepAliveTimeouts.Add(1, new KeyValuePair<string, object?>(PeerIdTag, (long)peer), new KeyValuePair<string, object?>("direction", outbound ? "outbound" : "inbound"));
    }

    public void KeepAliveAcked() => Interlocked.Increment(ref _keepAliveAcksTotal);

    /// <summary>Flushes of message connections (each <see cref="Sent"/> call is one); bytes sent / flushes is the write granularity.</summary>
    public long Flushes => Interlocked.Read(ref _flushesTotal);

    public void Sent(ulong peer, long bytes, int messages)
    {
        Interlocked.Increment(ref _flushesTotal);
        Interlocked.Add(ref _bytesSentTotal, bytes);
        Interlocked.Add(ref _messagesSentTotal, messages);

        // The tag boxes the peer id: only when someone listens (this runs once per flush).
        if (_bytesSent.Enabled || _messagesSent.Enabled)
        {
            var tag = Peer(peer);
            _bytesSent.Add(bytes, tag);
            if (messages > 0)
            {
                _messagesSent.Add(messages, tag);
            }
        }
    }

    public void Received(ulong peer, long bytes, int messages)
    {
        Interlocked.Add(ref _bytesReceivedTotal, bytes);
        Interlocked.Add(ref _messagesReceivedTotal, messages);

        // As in Sent: no boxed tag per frame unless someone listens.
        if (_bytesReceived.Enabled || _messagesReceived.Enabled)
        {
            var tag = Peer(peer);
            _bytesReceived.Add(bytes, tag);
            if (messages > 0)
            {
                _messagesReceived.Add(messages, tag);
            }
        }
    }

    public void Dropped(ulong peer, string reason, int count = 1)
    {
        Interlocked.Add(ref _messagesDroppedTotal, count);
        _messagesDropped.Add(count, Peer(peer), new KeyValuePair<string, object?>("reason", reason));
    }

    public void Connected(ulong peer, bool reconnect)
    {
        Interlocked.Increment(ref _connectsTotal);
        if (reconnect)
        {
            Interlocked.Increment(ref _reconnectsTotal);
        }

        _connects.Add(1, Peer(peer), new KeyValuePair<string, object?>("reconnect", reconnect));
    }

    public void HandshakeFailed(ulong peer)
    {
        Interlocked.Increment(ref _handshakeFailuresTotal);
        _handshakeFailures.Add(1, Peer(peer));
    }

    public void TlsFailed(ulong peer)
    {
        Interlocked.Increment(ref _tlsFailuresTotal);
        _tlsFailures.Add(1, Peer(peer));
    }

    public void FrameError(ulong peer, string reason)
    {
        Interlocked.Increment(ref _frameErrorsTotal);
        _frameErrors.Add(1, Peer(peer), new KeyValuePair<string, object?>("reason", reason));
    }

    public long SnapshotsSent => Interlocked.Read(ref _snapshotsSentTotal);

    public long SnapshotsFailed => Interlocked.Read(ref _snapshotsFailedTotal);

    public long SnapshotsReceived => Interlocked.Read(ref _snapshotsReceivedTotal);

    public void Snapshot(ulong peer, string outcome)
    {
        switch (outcome)
        {
            case "sent":
                Interlocked.Increment(ref _snapshotsSentTotal);
                break;
            case "send_failed":
                Interlocked.Increment(ref _snapshotsFailedTotal);
                break;
            default:
                Interlocked.Increment(ref _snapshotsReceivedTotal);
                break;
        }

        _snapshots.Add(1, Peer(peer), new KeyValuePair<string, object?>("outcome", outcome));
    }

    public void Dispose() => _meter.Dispose();

    private static KeyValuePair<string, object?> Peer(ulong peer) => new(PeerIdTag, (long)peer);
}
