using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using EmbeddedRaft.Consensus.Messages;
using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Consensus.Transport.Tcp;

/// <summary>
/// An <see cref="IRaftTransport"/> over TCP (optionally TLS with mutual authentication), for Raft
/// nodes in different processes or machines. Listens on <see cref="TcpTransportOptions.ListenAddress"/>
/// from construction; sends to the addresses in <see cref="TcpTransportOptions.Peers"/>, which
/// <see cref="SetPeerAddress"/> and <see cref="RemovePeer"/> change at run time.
/// </summary>
/// <remarks>
/// <para>
/// Per peer: one outbound message connection (the peer opens its own toward this node), fed from a
/// bounded queue of <see cref="TcpTransportOptions.SendQueueCapacity"/> messages: <see cref="Send"/>
/// only queues (a full queue drops and counts), and a background task writes length-prefixed
/// frames carrying many messages each through System.IO.Pipelines, reconnecting with exponential
/// backoff and jitter. Each snapshot goes over a connection of its own, in chunks, so it never
/// delays heartbeats. Wire format: docs/formats.md.
/// </para>
/// <para>
/// Every connection starts with a handshake (protocol version, cluster id, sender id, receiver id);
/// a peer of another cluster, a sender not in the peer list, or a connection meant for another node
/// is refused with a reason, logged and closed. A malformed, oversize, undecodable or stalled frame
/// closes that connection only. Instruments: meter "EmbeddedRaft.Consensus", names
/// <c>embeddedraft.transport.*</c>, tagged <c>peer.id</c>.
/// </para>
/// <para>Thread-safety: every member is thread-safe.</para>
/// </remarks>
public sealed class TcpTransport : IRaftTransport, IAsyncDisposable
{
    private readonly Lock _lock = new();
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Dictionary<ulong, TcpPeerSender> _senders = [];

    // A copy of _senders for Send, replaced (under _lock) whenever _senders changes: the hot path
    // reads it without a lock. Empty once disposed.
    private volatile Dictionary<ulong, TcpPeerSender> _sendersView = [];
    private readonly Dictionary<ulong, TcpInboundConnection> _inboundMessages = [];
    private readonly ConcurrentDictionary<Task, bool> _connections = new();
    private readonly Task _accepting;
    private IRaftMessageReceiver? _receiver;
    private int _openInbound;
    private bool _refusingInbound; // only the accept loop reads and writes it
    private bool _disposed;

    /// <summary>Starts listening on <see cref="TcpTransportOptions.ListenAddress"/>; connections to peers open on the first message.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="options"/> is null.</exception>
    /// <exception cref="ArgumentException">A rule between options is broken, or the TLS options cannot work.</exception>
    /// <exception cref="SocketException">The listen address cannot be bound (in use, not local).</exception>
    public TcpTransport(TcpTransportOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        options.Tls?.Validate();
        Options = options;
        Log = options.Logger;
        Metrics = new TcpTransportMetrics(options.NodeId);
        var listen = IPEndPoint.Parse(options.ListenAddress);
        _listener = new Socket(listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            _listener.Bind(listen);
            _listener.Listen(512);
        }
        catch
        {
            _listener.Dispose();
            Metrics.Dispose();
            throw;
        }

        LocalEndPoint = (IPEndPoint)_listener.LocalEndPoint!;
        foreach (var (id, address) in options.Peers)
        {
            _senders[id] = new TcpPeerSender(this, id, TcpPeerAddress.Parse(address, nameof(options)));
        }

        _sendersView = new Dictionary<ulong, TcpPeerSender>(_senders);
        foreach (var sender in _senders.Values)
        {
            sender.Start();
        }

        _accepting = Task.Run(AcceptAsync);
        TcpTransportLog.Listening(Log, options.NodeId, LocalEndPoint, options.ClusterId, options.Tls is not null);
    }

    /// <summary>Where this transport listens (the port chosen when the listen address asked for port 0).</summary>
    public IPEndPoint LocalEndPoint { get; }

    internal TcpTransportOptions Options { get; }

    internal ILogger Log { get; }

    internal TcpTransportMetrics Metrics { get; }

    internal IRaftMessageReceiver? CurrentReceiver => Volatile.Read(ref _receiver);

    /// <summary>Accepted connections still running (message and snapshot connections from peers, and ones in their handshake).</summary>
    internal int InboundConnections => Volatile.Read(ref _openInbound);

    /// <inheritdoc/>
    public IDisposable Bind(ulong localId, IRaftMessageReceiver receiver)
    {
        ArgumentNullException.ThrowIfNull(receiver);
        if (localId != Options.NodeId)
        {
            throw new ArgumentException($"This transport serves node {Options.NodeId}, not node {localId}.", nameof(localId));
        }

        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_receiver is not null)
            {
                throw new InvalidOperationException($"Node {localId} already has a receiver bound on this transport; dispose that binding first.");
            }

            Volatile.Write(ref _receiver, receiver);
        }

        return new Binding(this, receiver);
    }

    /// <summary>
    /// Queues <paramref name="message"/> for <see cref="Message.To"/> and returns at once. Dropped
    /// (and counted in <c>embeddedraft.transport.messages_dropped</c>) when the peer's queue is full,
    /// the peer has no address (the node is then told it is unreachable), or the transport is disposed.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="message"/> is null.</exception>
    public void Send(Message message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (Volatile.Read(ref _disposed))
        {
            Metrics.Dropped(message.To, "stopped");
            return;
        }

        // A send racing a change of peers may use the view just replaced: a removed sender's queue
        // is completed, so the message is dropped and counted as "stopped".
        if (!_sendersView.TryGetValue(message.To, out var sender))
        {
            Metrics.Dropped(message.To, "no_address");
            ReportUnreachable(message.To);
            return;
        }

        sender.TrySend(message);
    }

    /// <inheritdoc/>
    /// <remarks>
    /// Opens a connection of its own to the peer, streams the data in chunks of
    /// <see cref="TcpTransportOptions.SnapshotChunkSizeBytes"/> (TCP's flow control and the
    /// receiver's bounded buffer pace it), then waits for the receiver's acknowledgement. A refused,
    /// lost or stalled connection throws <see cref="PeerUnreachableException"/>; a receiver that
    /// failed to save throws <see cref="IOException"/> with its reason.
    /// </remarks>
    public async ValueTask SendSnapshotAsync(Message snapshotMessage, Stream data, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(snapshotMessage);
        ArgumentNullException.ThrowIfNull(data);
        if (snapshotMessage.Type != MessageType.Snapshot || snapshotMessage.Snapshot is null)
        {
            throw new ArgumentException($"Expected a {nameof(MessageType.Snapshot)} message with snapshot metadata, got {snapshotMessage}.", nameof(snapshotMessage));
        }

        ulong peer = snapshotMessage.To;
        EndPoint? address;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            address = _senders.TryGetValue(peer, out var sender) ? sender.Address : null;
        }

        if (address is null)
        {
            ReportUnreachable(peer);
            throw new PeerUnreachableException(peer, "it has no address (not in the peer list).");
        }

        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
        await new TcpSnapshotSender(this, snapshotMessage, address).RunAsync(data, linked.Token, cancellationToken);
    }

    /// <summary>
    /// Adds peer <paramref name="peerId"/> at <paramref name="address"/> ("host:port"), or moves it
    /// there: its current connection closes and the next one goes to the new address. From now on
    /// its connections are accepted. Call it when membership adds a node or a node moves.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="peerId"/> is 0.</exception>
    /// <exception cref="ArgumentException"><paramref name="peerId"/> is this node, or <paramref name="address"/> is not "host:port".</exception>
    /// <exception cref="ObjectDisposedException">The transport is disposed.</exception>
    public void SetPeerAddress(ulong peerId, string address)
    {
        ArgumentOutOfRangeException.ThrowIfZero(peerId);
        if (peerId == Options.NodeId)
        {
            throw new ArgumentException($"Node {peerId} is this node; it has no peer address.", nameof(peerId));
        }

        EndPoint endPoint = TcpPeerAddress.Parse(address, nameof(address));
        TcpPeerSender? added = null;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_senders.TryGetValue(peerId, out var sender))
            {
                sender.SetAddress(endPoint);
            }
            else
            {
                added = new TcpPeerSender(this, peerId, endPoint);
                _senders[peerId] = added;
                _sendersView = new Dictionary<ulong, TcpPeerSender>(_senders);
            }
        }

        added?.Start();
        TcpTransportLog.PeerAddress(Log, Options.NodeId, peerId, address);
    }

    /// <summary>
    /// Forgets peer <paramref name="peerId"/> (removed from the cluster): its queue is dropped, its
    /// connections are closed, and its new connections are refused. Does nothing for an unknown id.
    /// </summary>
    /// <returns>A task that completes when the peer's outbound connection is closed.</returns>
    public async Task RemovePeer(ulong peerId)
    {
        TcpPeerSender? sender;
        TcpInboundConnection? inbound;
        lock (_lock)
        {
            if (_senders.Remove(peerId, out sender))
            {
                _sendersView = new Dictionary<ulong, TcpPeerSender>(_senders);
            }

            _inboundMessages.Remove(peerId, out inbound);
        }

        inbound?.Abort();
        if (sender is not null)
        {
            TcpTransportLog.PeerRemoved(Log, Options.NodeId, peerId);
            await sender.StopAsync(TimeSpan.Zero);
        }
    }

    /// <summary>
    /// Stops the transport: stops listening, gives each peer connection up to
    /// <see cref="TcpTransportOptions.ShutdownFlushTimeout"/> to flush what is queued, then closes
    /// every connection (snapshot transfers in progress fail). Later sends are dropped. Idempotent.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        List<TcpPeerSender> senders;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            Volatile.Write(ref _disposed, true);
            senders = [.. _senders.Values];
            _senders.Clear();
            _sendersView = [];
        }

        _listener.Dispose();
        await Task.WhenAll(senders.Select(s => s.StopAsync(Options.ShutdownFlushTimeout)));
        await _stopping.CancelAsync();
        await _accepting;
        await Task.WhenAll(_connections.Keys);
        _stopping.Dispose();
        Metrics.Dispose();
        TcpTransportLog.Stopped(Log, Options.NodeId);
    }

    /// <summary>Why a hello is refused, or null when it is accepted.</summary>
    internal string? CheckHello(in TcpHello hello)
    {
        if (hello.Version != TcpFrame.ProtocolVersion)
        {
            return $"protocol version {hello.Version} is not supported (this node speaks {TcpFrame.ProtocolVersion})";
        }

        if (hello.ClusterId != Options.ClusterId)
        {
            return $"cluster id {hello.ClusterId} is not this node's cluster";
        }

        if (hello.ReceiverId != Options.NodeId)
        {
            return $"this is node {Options.NodeId}, not node {hello.ReceiverId}";
        }

        if (hello.Kind is not (TcpConnectionKind.Messages or TcpConnectionKind.Snapshot))
        {
            return $"unknown connection kind {(byte)hello.Kind}";
        }

        lock (_lock)
        {
            if (_disposed)
            {
                return "this node is stopping";
            }

            if (!_senders.ContainsKey(hello.SenderId))
            {
                return $"node {hello.SenderId} is not a member of this node's peer list";
            }
        }

        return null;
    }

    /// <summary>
    /// Opens a connection to <paramref name="peerId"/> at <paramref name="address"/>: TCP, TLS when
    /// configured, and the handshake, all bounded by their timeouts.
    /// </summary>
    /// <exception cref="TcpRefusedException">The peer refused the handshake.</exception>
    internal async Task<TcpConnection> ConnectAsync(ulong peerId, EndPoint address, TcpConnectionKind kind, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        Stream? stream = null;
        TcpConnection? connection = null;
        try
        {
            using (var connect = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                connect.CancelAfter(Options.ConnectTimeout);
                try
                {
                    await socket.ConnectAsync(address, connect.Token);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    throw new TimeoutException($"connecting to {address} took longer than {Options.ConnectTimeout.TotalSeconds:0.###} s");
                }
            }

            stream = new NetworkStream(socket, ownsSocket: true);
            if (Options.Tls is { } tls)
            {
                var ssl = new SslStream(stream, leaveInnerStreamOpen: false);
                stream = ssl;
                using var handshake = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                handshake.CancelAfter(Options.HandshakeTimeout);
                var certificate = tls.ClientCertificate?.Invoke(peerId);
                try
                {
                    await ssl.AuthenticateAsClientAsync(
                        new SslClientAuthenticationOptions
                        {
                            TargetHost = TcpPeerAddress.Host(address),
                            ClientCertificates = certificate is null ? null : [certificate],
                            LocalCertificateSelectionCallback = certificate is null ? null : (_, _, _, _, _) => certificate,
                            RemoteCertificateValidationCallback = tls.IsRemoteCertificateValid,
                            EnabledSslProtocols = tls.EnabledProtocols,
                            CertificateRevocationCheckMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck,
                        },
                        handshake.Token);
                }
                catch (Exception failure) when (failure is not InvariantViolationException && !cancellationToken.IsCancellationRequested)
                {
                    Metrics.TlsFailed(peerId);
                    throw new IOException($"the TLS handshake with {address} failed: {failure.Message}", failure);
                }
            }

            connection = new TcpConnection(socket, stream, Options.MaxFrameSizeBytes, Options.FrameTimeout, cancellationToken);
            TcpFrame.WriteHello(connection.Writer, new TcpHello(TcpFrame.ProtocolVersion, kind, Options.ClusterId, Options.NodeId, peerId));
            await connection.FlushAsync(Options.HandshakeTimeout);
            bool answered;
            try
            {
                answered = await connection.ReadFrameAsync(Options.HandshakeTimeout);
            }
            catch (IOException failure) when (Options.Tls is not null)
            {
                // With TLS 1.3 the server's verdict on this node's certificate arrives after the
                // client's handshake completed: a refused certificate shows up here.
                Metrics.TlsFailed(peerId);
                throw new IOException($"the peer at {address} closed the TLS connection (certificate refused?): {failure.Message}", failure);
            }

            if (!answered)
            {
                throw new IOException($"the peer at {address} closed the connection during the handshake");
            }

            switch (connection.FrameType)
            {
                case TcpFrameType.HelloAccepted:
                    return connection;
                case TcpFrameType.Refused:
                    string reason = TcpFrame.ReadReason(connection.FrameBody);
                    Metrics.HandshakeFailed(peerId);
                    throw new TcpRefusedException(peerId, reason);
                default:
                    throw new TcpProtocolException($"a {connection.FrameType} frame in answer to the handshake", "unexpected");
            }
        }
        catch
        {
            if (connection is not null)
            {
                await connection.DisposeAsync();
            }
            else if (stream is not null)
            {
                await stream.DisposeAsync();
            }

            socket.Dispose();
            throw;
        }
    }

    internal void ReportUnreachable(ulong peerId)
    {
        var receiver = CurrentReceiver;
        if (receiver is null)
        {
            return;
        }

        try
        {
            receiver.ReportUnreachable(peerId);
        }
#pragma warning disable CA1031 // A receiver that throws must not stop the connection task: logged.
        catch (Exception failure)
#pragma warning restore CA1031
        {
            TcpTransportLog.ReceiverFailed(Log, failure, Options.NodeId);
        }
    }

    /// <summary>
    /// Hands the messages decoded from one read's frames to <paramref name="receiver"/> in one call, in order (a
    /// receiver queues them as one item, not one per message), with the frame copies lent with them:
    /// only ever any for a receiver that borrows them (<see cref="IReceivedFrameBorrower"/>).
    /// </summary>
    internal void Deliver(IRaftMessageReceiver? receiver, ulong peerId, ReadOnlySpan<Message> messages, ReadOnlySpan<LentFrame> frames = default)
    {
        if (receiver is null)
        {
            Metrics.Dropped(peerId, "unbound", messages.Length);
            return;
        }

        var borrower = receiver as IReceivedFrameBorrower;
        if (borrower is null && !frames.IsEmpty)
        {
            throw new InvariantViolationException($"{frames.Length} frame copies lent to a receiver that does not borrow them.");
        }

        try
        {
            if (borrower is not null)
            {
                borrower.ReceiveBatch(messages, frames);
            }
            else
            {
                receiver.ReceiveBatch(messages);
            }
        }
#pragma warning disable CA1031 // A receiver that throws must not close the connection: logged.
        catch (Exception failure)
#pragma warning restore CA1031
        {
            TcpTransportLog.ReceiverFailed(Log, failure, Options.NodeId);
        }
    }

    internal void TrackInbound(ulong peerId, TcpInboundConnection connection)
    {
        TcpInboundConnection? replaced;
        lock (_lock)
        {
            _inboundMessages.TryGetValue(peerId, out replaced);
            _inboundMessages[peerId] = connection;
        }

        // A peer has one message connection toward this node: a new one means the old is dead
        // (the peer restarted, or the path broke without a FIN reaching this side).
        replaced?.Abort();
    }

    internal void UntrackInbound(ulong peerId, TcpInboundConnection connection)
    {
        lock (_lock)
        {
            if (_inboundMessages.TryGetValue(peerId, out var current) && ReferenceEquals(current, connection))
            {
                _inboundMessages.Remove(peerId);
            }
        }
    }

    private static EndPoint? SafeRemote(Socket socket)
    {
        try
        {
            return socket.RemoteEndPoint;
        }
        catch (SocketException)
        {
            return null;
        }
    }

    private async Task AcceptAsync()
    {
        while (true)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptAsync(_stopping.Token);
            }
            catch (Exception) when (_stopping.IsCancellationRequested || _disposed)
            {
                return;
            }
            catch (SocketException failure)
            {
                // A connection reset before it was accepted, or descriptors exhausted: keep listening.
                TcpTransportLog.AcceptFailed(Log, failure, Options.NodeId);
                continue;
            }

            // The cap counts every accepted connection until its task ends (handshaking ones too),
            // so a flood of connections costs this node one accept and one close each.
            if (Volatile.Read(ref _openInbound) >= Options.MaxInboundConnections)
            {
                Metrics.ConnectionRefused();
                if (!_refusingInbound)
                {
                    _refusingInbound = true;
                    TcpTransportLog.InboundLimit(Log, Options.NodeId, SafeRemote(socket), Volatile.Read(ref _openInbound));
                }

                socket.Close(0);
                continue;
            }

            _refusingInbound = false;
            Interlocked.Increment(ref _openInbound);
            var inbound = new TcpInboundConnection(this, socket);
            Task running = Task.Run(async () =>
            {
                try
                {
                    await inbound.RunAsync(_stopping.Token);
                }
                finally
                {
                    Interlocked.Decrement(ref _openInbound);
                }
            });
            _connections.TryAdd(running, true);
            _ = running.ContinueWith(static (t, state) => ((ConcurrentDictionary<Task, bool>)state!).TryRemove(t, out _), _connections, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    private void Unbind(IRaftMessageReceiver receiver)
    {
        lock (_lock)
        {
            if (ReferenceEquals(_receiver, receiver))
            {
                Volatile.Write(ref _receiver, null);
            }
        }
    }

    private sealed class Binding(TcpTransport transport, IRaftMessageReceiver receiver) : IDisposable
    {
        public void Dispose() => transport.Unbind(receiver);
    }
}
