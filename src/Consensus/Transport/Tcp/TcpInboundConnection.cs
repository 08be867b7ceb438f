using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using EmbeddedRaft.Consensus.Messages;
using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Consensus.Transport.Tcp;

/// <summary>
/// One accepted connection: TLS (when configured), the handshake (refused with a reason frame when
/// it names another cluster, an unknown sender or another receiver), then either a stream of
/// message batches handed to the node, or one snapshot transfer saved through the node's receiver
/// and acknowledged.
/// </summary>
/// <remarks>
/// Whatever the peer sends, the worst outcome is this connection closing: a bad frame is counted
/// and logged once (the connection then ends), and memory is bounded by one maximum frame plus
/// the pipe's buffers.
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA1001", Justification = "RunAsync owns the connection and disposes it before it returns.")]
internal sealed class TcpInboundConnection(TcpTransport transport, Socket socket)
{
    // At most this many messages per hand-off (the frames buffered by one read are bounded by the
    // pipe's reads anyway; this bounds the node's one inbox item when messages are tiny).
    private const int MaxMessagesPerHandOff = 4096;

    private readonly TcpTransportOptions _options = transport.Options;
    private ulong _peer;
    private TcpConnection? _connection;

    /// <summary>Closes the connection now (the peer was removed, or its newer connection replaced this one).</summary>
    public void Abort() => _connection?.Abort();

    public async Task RunAsync(CancellationToken stopping)
    {
        EndPoint? remote = socket.RemoteEndPoint;
        try
        {
            socket.NoDelay = true;
            Stream stream = new NetworkStream(socket, ownsSocket: true);
            if (_options.Tls is { } tls)
            {
                var ssl = new SslStream(stream, leaveInnerStreamOpen: false);
                stream = ssl;
                using var handshake = CancellationTokenSource.CreateLinkedTokenSource(stopping);
                handshake.CancelAfter(_options.HandshakeTimeout);
                try
                {
                    await ssl.AuthenticateAsServerAsync(
                        new SslServerAuthenticationOptions
                        {
                            ServerCertificateSelectionCallback = (_, _) => tls.ServerCertificate!(),
                            ClientCertificateRequired = true,
                            RemoteCertificateValidationCallback = tls.IsRemoteCertificateValid,
                            EnabledSslProtocols = tls.EnabledProtocols,
                            CertificateRevocationCheckMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck,
                        },
                        handshake.Token);
                }
                catch (Exception failure) when (failure is not InvariantViolationException && !stopping.IsCancellationRequested)
                {
                    transport.Metrics.TlsFailed(0);
                    TcpTransportLog.TlsRefused(transport.Log, failure, _options.NodeId, remote);
                    await stream.DisposeAsync();
                    return;
                }
            }

            _connection = new TcpConnection(socket, stream, _options.MaxFrameSizeBytes, _options.FrameTimeout, stopping);
            await using (_connection)
            {
                var hello = await ReadHelloAsync(remote);
                if (hello is null)
                {
                    return;
                }

                _peer = hello.Value.SenderId;
                if (hello.Value.Kind == TcpConnectionKind.Messages)
                {
                    transport.TrackInbound(_peer, this);
                    try
                    {
                        await ReceiveMessagesAsync();
                    }
                    finally
                    {
                        transport.UntrackInbound(_peer, this);
                    }
                }
                else
                {
                    await ReceiveSnapshotAsync();
                }
            }
        }
        catch (TcpProtocolException bad)
        {
            transport.Metrics.FrameError(_peer, bad.Kind);
            TcpTransportLog.BadFrame(transport.Log, bad, _options.NodeId, _peer, remote);
        }
        catch (MessageFormatException bad)
        {
            transport.Metrics.FrameError(_peer, "malformed");
            TcpTransportLog.BadFrame(transport.Log, bad, _options.NodeId, _peer, remote);
        }
        catch (Exception lost) when (lost is IOException or SocketException or OperationCanceledException or TimeoutException or ObjectDisposedException)
        {
            if (!stopping.IsCancellationRequested)
            {
                TcpTransportLog.InboundEnded(transport.Log, lost, _options.NodeId, _peer, remote);
            }
        }
        finally
        {
            socket.Dispose();
        }
    }

    private async Task<TcpHello?> ReadHelloAsync(EndPoint? remote)
    {
        var connection = _connection!;
        if (!await connection.ReadFrameAsync(_options.HandshakeTimeout))
        {
            return null;
        }

        if (connection.FrameType != TcpFrameType.Hello)
        {
            throw new TcpProtocolException($"a {connection.FrameType} frame before the handshake", "unexpected");
        }

        var hello = TcpFrame.ReadHello(connection.FrameBody);
        string? refusal = transport.CheckHello(hello);
        if (refusal is not null)
        {
            transport.Metrics.HandshakeFailed(hello.SenderId);
            TcpTransportLog.HandshakeRefused(transport.Log, _options.NodeId, remote, hello.SenderId, hello.ClusterId, refusal);
            TcpFrame.WriteControl(connection.Writer, TcpFrameType.Refused, reason: refusal);
            await connection.FlushAsync(_options.HandshakeTimeout);
            return null;
        }

        TcpFrame.WriteControl(connection.Writer, TcpFrameType.HelloAccepted);
        await connection.FlushAsync(_options.HandshakeTimeout);
        return hello;
    }

    private async Task ReceiveMessagesAsync()
    {
        var connection = _connection!;
        ulong local = _options.NodeId;
        var batch = new List<Message>(64);

        // Decoded messages share one copy of their frame (made only when a message has data or a
        // context) and blocks of entry slots: see FrameDecodeContext for the lifetime rules. They
        // never alias the pipe's buffers, which the next read reuses.
        var decoding = new FrameDecodeContext();

        // Frame copies lent to a borrowing receiver (RaftNode's), in the order of the batch's frames.
        var lent = new List<LentFrame>();
        while (await ReadOrNoticeSilenceAsync(connection))
        {
            // Every frame the read left whole in the buffer is decoded before any is handed on: one
            // hand-off to the node (one inbox item, at most one wake-up of its loop) per read, not
            // per frame, and keep-alive answers written together and flushed once.
            batch.Clear();
            lent.Clear();

            // The receiver of this read's hand-off, taken once: frames are rented from its pool only
            // if it borrows them, so a frame is never lent to a receiver that would keep it forever,
            // and only while it can give them back (a RaftNode that is not a follower forgets every
            // frame: a pooled array rented for it would be one the pool never sees again).
            var receiver = transport.CurrentReceiver;
            decoding.Pool = receiver is IReceivedFrameBorrower { CanBorrowFrames: true } borrower ? borrower.FramePool : null;
            long frameBytes = 0;
            int whole = 0; // messages of the frames decoded whole so far
            bool answerKeepAlive = false;
            try
            {
                do
                {
                    if (connection.FrameType == TcpFrameType.KeepAlive)
                    {
                        TcpFrame.WriteControl(connection.Writer, TcpFrameType.KeepAliveAck);
                        answerKeepAlive = true;
                        continue;
                    }

                    if (connection.FrameType != TcpFrameType.Messages)
                    {
                        throw new TcpProtocolException($"a {connection.FrameType} frame on a message connection", "unexpected");
                    }

                    frameBytes += TcpFrame.HeaderSizeBytes + DecodeFrameBody(connection.FrameBody, decoding, batch, _peer, local);
                    TryLend(decoding, batch, whole, lent);
                    whole = batch.Count;
                }
                while (batch.Count < MaxMessagesPerHandOff && connection.TryTakeBufferedFrame());
            }
            catch (Exception bad) when (bad is TcpProtocolException or MessageFormatException)
            {
                // The frames before the bad one reach the node, as they would have frame by frame;
                // nothing of the bad frame does. Then the connection ends.
                batch.RemoveRange(whole, batch.Count - whole);
                HandOff(receiver, batch, lent, frameBytes);
                throw;
            }

            HandOff(receiver, batch, lent, frameBytes);

            if (answerKeepAlive)
            {
                await connection.FlushAsync(_options.WriteTimeout);
            }
        }
    }

    private void HandOff(IRaftMessageReceiver? receiver, List<Message> batch, List<LentFrame> lent, long frameBytes)
    {
        if (batch.Count > 0)
        {
            transport.Deliver(receiver, _peer, CollectionsMarshal.AsSpan(batch), CollectionsMarshal.AsSpan(lent));
            transport.Metrics.Received(_peer, frameBytes, batch.Count);
        }
    }

    /// <summary>
    /// Adds the frame just decoded (its messages are <paramref name="batch"/> from
    /// <paramref name="first"/> on) to <paramref name="lent"/> if its copy was rented and the borrower
    /// can tell from entry indexes alone when it is free: every byte field in it is the entry data of
    /// an append. Otherwise a rented copy is simply never returned (the collector takes it).
    /// </summary>
    private static void TryLend(FrameDecodeContext decoding, List<Message> batch, int first, List<LentFrame> lent)
    {
        if (decoding.PooledFrameCopy is not { } copy)
        {
            return;
        }

        ulong highest = 0;
        for (var i = first; i < batch.Count; i++)
        {
            var message = batch[i];
            if (!message.Context.IsEmpty || (message.Type != MessageType.Append && !message.Entries.IsEmpty))
            {
                return;
            }

            if (message.Type == MessageType.Append && !message.Entries.IsEmpty)
            {
                highest = Math.Max(highest, message.Entries.Span[^1].Index);
            }
        }

        if (highest > 0)
        {
            lent.Add(new LentFrame(copy, highest));
        }
    }

    /// <summary>
    /// Decodes one message frame's <paramref name="body"/> (a frame split across pipe segments is
    /// copied once here, and its messages own that copy) and appends its messages to
    /// <paramref name="batch"/>; returns the body's length.
    /// </summary>
    private static int DecodeFrameBody(in ReadOnlySequence<byte> body, FrameDecodeContext decoding, List<Message> batch, ulong peer, ulong local)
    {
        ReadOnlySpan<byte> bytes;
        if (body.IsSingleSegment)
        {
            bytes = body.FirstSpan;
            decoding.BeginFrame();
        }
        else
        {
            var length = (int)body.Length;
            var rented = decoding.Pool?.Rent(length);
            var copy = rented ?? GC.AllocateUninitializedArray<byte>(length);
            body.CopyTo(copy);
            bytes = copy.AsSpan(0, length);
            decoding.BeginFrame(copy, length, pooled: rented is not null);
        }

        if (bytes.IsEmpty)
        {
            throw new TcpProtocolException("an empty message batch", "malformed");
        }

        DecodeFrame(bytes, decoding, batch, peer, local);
        return bytes.Length;
    }

    /// <summary>
    /// Decodes a message frame's body (<paramref name="bytes"/>: length-prefixed messages) and
    /// appends its messages to <paramref name="batch"/>. The whole frame is decoded and checked
    /// before any of it reaches the node: a frame is taken whole or not at all.
    /// </summary>
    /// <exception cref="TcpProtocolException">A length runs past the frame, or a message is not from <paramref name="peer"/> to <paramref name="local"/>, or is a snapshot.</exception>
    /// <exception cref="MessageFormatException">A message does not decode.</exception>
    internal static void DecodeFrame(ReadOnlySpan<byte> bytes, FrameDecodeContext decoding, List<Message> batch, ulong peer, ulong local)
    {
        int offset = 0;
        while (offset < bytes.Length)
        {
            int length = TcpFrame.ReadLength(bytes, ref offset);
            if (length > bytes.Length - offset)
            {
                throw new TcpProtocolException($"a message of {length} bytes where {bytes.Length - offset} remain in its frame", "malformed");
            }

            var message = MessageCodec.DecodeMessage(bytes, offset, length, decoding);
            offset += length;
            if (message.To != local || message.From != peer)
            {
                throw new TcpProtocolException($"a message from {message.From} to {message.To} on the connection from {peer} to {local}", "malformed");
            }

            if (message.Type == MessageType.Snapshot)
            {
                throw new TcpProtocolException("a snapshot message on a message connection (snapshots have their own connection)", "unexpected");
            }

            batch.Add(message);
        }
    }

    /// <summary>
    /// The next frame of a message connection; false at its end. The sender sends a keep-alive every
    /// interval, so silence for the keep-alive timeout means the peer or the path is dead: counted,
    /// logged, and the connection ends (the peer's sender reconnects when it can).
    /// </summary>
    private async ValueTask<bool> ReadOrNoticeSilenceAsync(TcpConnection connection)
    {
        try
        {
            return await connection.ReadFrameAsync(_options.KeepAliveTimeout);
        }
        catch (TimeoutException) when (!connection.Lifetime.IsCancellationRequested)
        {
            transport.Metrics.KeepAliveTimedOut(_peer, outbound: false);
            TcpTransportLog.KeepAliveTimedOut(transport.Log, _options.NodeId, "from", _peer, connection.RemoteEndPoint, _options.KeepAliveTimeout.TotalSeconds);
            return false;
        }
    }

    private async Task ReceiveSnapshotAsync()
    {
        var connection = _connection!;
        if (!await connection.ReadFrameAsync(_options.FrameTimeout))
        {
            return;
        }

        if (connection.FrameType != TcpFrameType.SnapshotMessage)
        {
            throw new TcpProtocolException($"a {connection.FrameType} frame where a snapshot transfer starts", "unexpected");
        }

        var message = MessageCodec.DecodeMessage(connection.FrameBody.ToArray());
        if (message.Type != MessageType.Snapshot || message.Snapshot is null || message.To != _options.NodeId || message.From != _peer)
        {
            throw new TcpProtocolException($"a snapshot transfer that starts with {message}", "malformed");
        }

        var receiver = transport.CurrentReceiver;
        if (receiver is null)
        {
            await AckAsync(connection, saved: false, "the node is not running");
            return;
        }

        int chunk = _options.SnapshotChunkSizeBytes;
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 2L * chunk, resumeWriterThreshold: chunk, useSynchronizationContext: false));
        Task saving = SaveAsync(receiver, message, pipe.Reader, connection.Lifetime);
        long bytes = 0;
        try
        {
            while (true)
            {
                if (!await connection.ReadFrameAsync(_options.FrameTimeout))
                {
                    throw new IOException("the sender closed the connection before the snapshot's end");
                }

                if (connection.FrameType == TcpFrameType.SnapshotEnd)
                {
                    break;
                }

                if (connection.FrameType != TcpFrameType.SnapshotChunk)
                {
                    throw new TcpProtocolException($"a {connection.FrameType} frame inside a snapshot transfer", "unexpected");
                }

                foreach (var segment in connection.FrameBody)
                {
                    pipe.Writer.Write(segment.Span);
                }

                bytes += connection.FrameBody.Length;
                transport.Metrics.Received(_peer, TcpFrame.HeaderSizeBytes + connection.FrameBody.Length, 0);

                // Back-pressure: while the node has not saved what is buffered, stop reading the
                // socket, so TCP's window stops the sender.
                await pipe.Writer.FlushAsync(connection.Lifetime);
            }
        }
        catch (Exception interrupted)
        {
            await pipe.Writer.CompleteAsync(new IOException($"the snapshot transfer from peer {_peer} was interrupted after {bytes} bytes: {interrupted.Message}", interrupted));
            try
            {
                await saving;
            }
#pragma warning disable CA1031 // The receiver failed because the transfer did; the transfer's failure is what is reported.
            catch (Exception)
#pragma warning restore CA1031
            {
            }

            throw;
        }

        await pipe.Writer.CompleteAsync();
        try
        {
            await saving;
        }
        catch (Exception failure) when (failure is not InvariantViolationException)
        {
            TcpTransportLog.SnapshotSaveFailed(transport.Log, failure, _options.NodeId, message.Snapshot.Index, _peer);
            await AckAsync(connection, saved: false, failure.Message);
            return;
        }

        transport.Metrics.Snapshot(_peer, "received");
        TcpTransportLog.SnapshotSaved(transport.Log, _options.NodeId, message.Snapshot.Index, bytes, _peer);
        await AckAsync(connection, saved: true, null);
    }

    private static async Task SaveAsync(IRaftMessageReceiver receiver, Message message, PipeReader data, CancellationToken cancellationToken)
    {
        await Task.Yield();
        try
        {
            await using var stream = data.AsStream(leaveOpen: true);
            await receiver.ReceiveSnapshotAsync(message, stream, cancellationToken);
        }
        finally
        {
            // A receiver that stops early must not leave the network side blocked on back-pressure.
            await data.CompleteAsync();
        }
    }

    private async Task AckAsync(TcpConnection connection, bool saved, string? reason)
    {
        TcpFrame.WriteControl(connection.Writer, TcpFrameType.SnapshotAck, saved ? (byte)0 : (byte)1, reason);
        await connection.FlushAsync(_options.WriteTimeout);
    }
}
