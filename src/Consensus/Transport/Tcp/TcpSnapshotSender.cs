using System.Net;
using System.Net.Sockets;
using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Transport.Tcp;

/// <summary>
/// One snapshot transfer on a connection of its own: the snapshot message, the data in chunks
/// (each flush waits for TCP's window, which the receiver closes while its save falls behind),
/// an end frame, then the receiver's acknowledgement. Network failures become
/// <see cref="PeerUnreachableException"/>; a failure reading the local data is thrown as it is.
/// </summary>
internal sealed class TcpSnapshotSender(TcpTransport transport, Message message, EndPoint address)
{
    private readonly TcpTransportOptions _options = transport.Options;

    public async Task RunAsync(Stream data, CancellationToken cancellationToken, CancellationToken callerToken)
    {
        ulong peer = message.To;
        TcpConnection? connection = null;
        long bytes = 0;
        string? saveFailure = null;
        try
        {
            connection = await transport.ConnectAsync(peer, address, TcpConnectionKind.Snapshot, cancellationToken);
            var writer = connection.Writer;
            int length = MessageCodec.GetEncodedLength(message);
            if (length > _options.MaxFrameSizeBytes)
            {
                throw new InvalidOperationException($"The snapshot message is {length} bytes, over MaxFrameSizeBytes ({_options.MaxFrameSizeBytes}).");
            }

            Span<byte> start = writer.GetSpan(TcpFrame.HeaderSizeBytes + length);
            TcpFrame.WriteHeader(start, TcpFrameType.SnapshotMessage, length);
            MessageCodec.Encode(message, start[TcpFrame.HeaderSizeBytes..]);
            writer.Advance(TcpFrame.HeaderSizeBytes + length);

            int chunk = _options.SnapshotChunkSizeBytes;
            while (true)
            {
                Memory<byte> frame = writer.GetMemory(TcpFrame.HeaderSizeBytes + chunk);
                int filled = await ReadLocalAsync(data, frame.Slice(TcpFrame.HeaderSizeBytes, chunk), cancellationToken);
                if (filled == 0)
                {
                    break;
                }

                TcpFrame.WriteHeader(frame.Span, TcpFrameType.SnapshotChunk, filled);
                writer.Advance(TcpFrame.HeaderSizeBytes + filled);
                await connection.FlushAsync(_options.WriteTimeout);
                bytes += filled;
                transport.Metrics.Sent(peer, TcpFrame.HeaderSizeBytes + filled, 0);
            }

            TcpFrame.WriteControl(writer, TcpFrameType.SnapshotEnd);
            await connection.FlushAsync(_options.WriteTimeout);
            transport.Metrics.Sent(peer, TcpFrame.HeaderSizeBytes + length + TcpFrame.HeaderSizeBytes, 1);

            if (!await connection.ReadFrameAsync(_options.SnapshotAckTimeout))
            {
                throw new IOException("the receiver closed the connection before acknowledging the snapshot");
            }

            if (connection.FrameType != TcpFrameType.SnapshotAck || connection.FrameBody.IsEmpty)
            {
                throw new TcpProtocolException($"a {connection.FrameType} frame where the snapshot's acknowledgement belongs", "unexpected");
            }

            byte status = connection.FrameBody.FirstSpan[0];
            string reason = TcpFrame.ReadReason(connection.FrameBody.Slice(1));
            if (status != 0)
            {
                saveFailure = reason;
            }
            else
            {
                transport.Metrics.Snapshot(peer, "sent");
                TcpTransportLog.SnapshotSent(transport.Log, _options.NodeId, message.Snapshot!.Index, bytes, peer);
            }
        }
        catch (OperationCanceledException) when (callerToken.IsCancellationRequested)
        {
            throw;
        }
        catch (LocalReadException local)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(local.InnerException!);
        }
        catch (Exception failure) when (failure is SocketException or TimeoutException or TcpProtocolException or TcpRefusedException or OperationCanceledException or ObjectDisposedException or IOException)
        {
            TcpTransportLog.SnapshotSendFailed(transport.Log, failure, _options.NodeId, message.Snapshot!.Index, peer, bytes);
            if (failure is TcpProtocolException bad)
            {
                transport.Metrics.FrameError(peer, bad.Kind);
            }

            transport.Metrics.Snapshot(peer, "send_failed");
            transport.ReportUnreachable(peer);
            throw new PeerUnreachableException(peer, $"the snapshot transfer failed after {bytes} bytes: {failure.Message}");
        }
        finally
        {
            if (connection is not null)
            {
                await connection.DisposeAsync();
            }
        }

        if (saveFailure is not null)
        {
            // The peer was reached and answered: not unreachable, its save failed.
            transport.Metrics.Snapshot(peer, "send_failed");
            throw new IOException($"Peer {peer} failed to save snapshot {message.Snapshot!.Index}: {saveFailure}");
        }
    }

    private static async Task<int> ReadLocalAsync(Stream data, Memory<byte> destination, CancellationToken cancellationToken)
    {
        int filled = 0;
        try
        {
            while (filled < destination.Length)
            {
                int read = await data.ReadAsync(destination[filled..], cancellationToken);
                if (read == 0)
                {
                    break;
                }

                filled += read;
            }
        }
        catch (Exception failure) when (failure is not OperationCanceledException)
        {
            throw new LocalReadException(failure);
        }

        return filled;
    }

    /// <summary>Carries a failure reading the local snapshot data past the network failure handler.</summary>
    private sealed class LocalReadException(Exception inner) : Exception(inner.Message, inner);
}
