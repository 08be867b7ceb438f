using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;

namespace EmbeddedRaft.Consensus.Transport.Tcp;

/// <summary>
/// One established connection (plain or TLS) with a pipe on each side of its stream, and a frame
/// reader over the inbound pipe that enforces the frame limits: a frame over the maximum size is
/// refused from its header, and a frame left partial longer than the frame timeout fails the read.
/// </summary>
/// <remarks>Not thread-safe: one reader task and one writer task at most. <see cref="Abort"/> may be called from anywhere.</remarks>
internal sealed class TcpConnection : IAsyncDisposable
{
    private const int PipeBufferSizeBytes = 64 * 1024;

    /// <summary>
    /// A message frame whose body is at least this long and which the last read left partial is
    /// read straight from the stream into an array of its own (see <see cref="ReadsLargeMessageFramesDirectly"/>).
    /// Below it the pipe's copy is cheap and a frame of messages without data needs no array at all.
    /// </summary>
    internal const int DirectReadMinBodyBytes = 16 * 1024;

    /// <summary>
    /// ... and at most this long: the array is allocated when the header arrives, before its bytes
    /// do, so a larger frame (up to the maximum frame size) grows in the pipe as its bytes arrive,
    /// as every frame did before. 4 MiB holds RaftNode's largest append (1 MiB by default).
    /// </summary>
    internal const int DirectReadMaxBodyBytes = 4 * 1024 * 1024;

    private readonly Socket _socket;
    private readonly Stream _stream;
    private readonly int _maxFrameBytes;
    private readonly TimeSpan _frameTimeout;
    private readonly CancellationTokenSource _lifetime;
    private readonly CancellationTokenSource _readTimeout;
    private readonly CancellationTokenSource _writeTimeout;

    private ReadOnlySequence<byte> _buffer;
    private SequencePosition _consumed;
    private bool _haveBuffer;
    private bool _completed;
    private int _disposed;

    public TcpConnection(Socket socket, Stream stream, int maxFrameBytes, TimeSpan frameTimeout, CancellationToken stopping)
    {
        _socket = socket;
        _stream = stream;
        _maxFrameBytes = maxFrameBytes;
        _frameTimeout = frameTimeout;
        _lifetime = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        _readTimeout = CancellationTokenSource.CreateLinkedTokenSource(_lifetime.Token);
        _writeTimeout = CancellationTokenSource.CreateLinkedTokenSource(_lifetime.Token);
        RemoteEndPoint = socket.RemoteEndPoint;
        Reader = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: PipeBufferSizeBytes, minimumReadSize: 4096, leaveOpen: true));
        Writer = PipeWriter.Create(stream, new StreamPipeWriterOptions(minimumBufferSize: PipeBufferSizeBytes, leaveOpen: true));
    }

    public PipeReader Reader { get; }

    public PipeWriter Writer { get; }

    public EndPoint? RemoteEndPoint { get; }

    /// <summary>Cancelled when the connection is aborted or the transport stops.</summary>
    public CancellationToken Lifetime => _lifetime.Token;

    /// <summary>The type of the frame <see cref="ReadFrameAsync"/> (or <see cref="TryTakeBufferedFrame"/>) last returned.</summary>
    public TcpFrameType FrameType { get; private set; }

    /// <summary>The body of the frame <see cref="ReadFrameAsync"/> (or <see cref="TryTakeBufferedFrame"/>) last returned; valid until the next <see cref="ReadFrameAsync"/>.</summary>
    public ReadOnlySequence<byte> FrameBody { get; private set; }

    /// <summary>
    /// When the last frame was read straight into an array of its own: that array (exactly the
    /// body, the same bytes as <see cref="FrameBody"/>), which the caller may keep (the connection
    /// never touches it again); null when the body is in the pipe's reused buffers.
    /// </summary>
    public byte[]? OwnedFrameBody { get; private set; }

    /// <summary>
    /// Set (by a message connection, once its handshake is done) to read a large message frame that
    /// a read left partial (<see cref="DirectReadMinBodyBytes"/> to <see cref="DirectReadMaxBodyBytes"/>)
    /// straight from the stream into its own array (<see cref="OwnedFrameBody"/>): its bytes are
    /// copied once, by the socket's (or TLS's) read, instead of into the pipe's segments and then
    /// out of them into the array its messages keep. Never before the handshake, so a peer that
    /// has not identified itself cannot make this side allocate ahead of the bytes it sends.
    /// </summary>
    public bool ReadsLargeMessageFramesDirectly { get; set; }

    /// <summary>
    /// Reads the next whole frame into <see cref="FrameType"/> and <see cref="FrameBody"/>; false
    /// when the peer closed the connection between frames. Waits at most <paramref name="idleTimeout"/>
    /// (null: forever) for a frame to start, and at most the frame timeout for a started frame to end.
    /// </summary>
    /// <exception cref="TcpProtocolException">A bad header, a stalled partial frame, or the connection closed inside a frame.</exception>
    public async ValueTask<bool> ReadFrameAsync(TimeSpan? idleTimeout)
    {
        while (true)
        {
            bool partial = false;
            if (_haveBuffer)
            {
                var rest = _buffer.Slice(_consumed);
                if (TcpFrame.TryRead(rest, _maxFrameBytes, out var type, out var body, out var next))
                {
                    _consumed = next;
                    FrameType = type;
                    FrameBody = body;
                    OwnedFrameBody = null;
                    return true;
                }

                partial = !rest.IsEmpty;
                if (partial && !_completed && ReadsLargeMessageFramesDirectly
                    && TcpFrame.TryReadHeader(rest, _maxFrameBytes, out var partialType, out int bodyLength)
                    && partialType == TcpFrameType.Messages
                    && bodyLength is >= DirectReadMinBodyBytes and <= DirectReadMaxBodyBytes)
                {
                    await ReadBodyDirectlyAsync(rest, bodyLength);
                    return true;
                }

                Reader.AdvanceTo(_consumed, _buffer.End);
                _haveBuffer = false;
                FrameBody = default;
                OwnedFrameBody = null;
                if (_completed)
                {
                    return partial
                        ? throw new TcpProtocolException("the connection closed inside a frame", "malformed")
                        : false;
                }
            }

            TimeSpan? timeout = partial ? _frameTimeout : idleTimeout;
            ReadResult result;
            if (timeout is { } limit)
            {
                _readTimeout.CancelAfter(limit);
                try
                {
                    result = await Reader.ReadAsync(_readTimeout.Token);
                }
                catch (OperationCanceledException) when (!_lifetime.IsCancellationRequested)
                {
                    throw partial
                        ? new TcpProtocolException($"a partial frame stalled for {limit.TotalSeconds:0.###} s", "stalled")
                        : new TimeoutException($"no frame within {limit.TotalSeconds:0.###} s");
                }

                if (!_readTimeout.TryReset())
                {
                    throw new TimeoutException($"no frame within {limit.TotalSeconds:0.###} s");
                }
            }
            else
            {
                result = await Reader.ReadAsync(_lifetime.Token);
            }

            _buffer = result.Buffer;
            _consumed = _buffer.Start;
            _haveBuffer = true;
            _completed = result.IsCompleted || result.IsCanceled;
        }
    }

    /// <summary>
    /// Reads the message frame that starts <paramref name="rest"/> (whose header says
    /// <paramref name="bodyLength"/> and whose body is not whole in it) into a new array: the part
    /// buffered is copied, the pipe is advanced past everything it holds (nothing else is in it:
    /// the frame is partial), and the rest of the body is read from the stream straight into the
    /// array. The pipe reads the stream again only at the next <see cref="ReadFrameAsync"/>, after
    /// the body's last byte, so the two never interleave. The frame timeout applies to every read,
    /// as it does to a partial frame in the pipe.
    /// </summary>
    /// <exception cref="TcpProtocolException">The rest stalled past the frame timeout, or the connection closed inside it.</exception>
    private async ValueTask ReadBodyDirectlyAsync(ReadOnlySequence<byte> rest, int bodyLength)
    {
        var owned = GC.AllocateUninitializedArray<byte>(bodyLength);
        var buffered = rest.Slice(TcpFrame.HeaderSizeBytes);
        buffered.CopyTo(owned);
        int have = (int)buffered.Length;
        Reader.AdvanceTo(_buffer.End);
        _haveBuffer = false;
        FrameBody = default;
        OwnedFrameBody = null;
        while (have < bodyLength)
        {
            int read;
            _readTimeout.CancelAfter(_frameTimeout);
            try
            {
                read = await _stream.ReadAsync(owned.AsMemory(have), _readTimeout.Token);
            }
            catch (OperationCanceledException) when (!_lifetime.IsCancellationRequested)
            {
                throw new TcpProtocolException($"a partial frame stalled for {_frameTimeout.TotalSeconds:0.###} s", "stalled");
            }

            if (!_readTimeout.TryReset())
            {
                throw new TcpProtocolException($"a partial frame stalled for {_frameTimeout.TotalSeconds:0.###} s", "stalled");
            }

            if (read == 0)
            {
                throw new TcpProtocolException("the connection closed inside a frame", "malformed");
            }

            have += read;
        }

        FrameType = TcpFrameType.Messages;
        FrameBody = new ReadOnlySequence<byte>(owned);
        OwnedFrameBody = owned;
    }

    /// <summary>
    /// Takes the next frame into <see cref="FrameType"/> and <see cref="FrameBody"/> only if it is
    /// already whole in what the last read buffered: never waits and never reads the socket. The
    /// bodies of the frames taken since the last <see cref="ReadFrameAsync"/> all stay valid until
    /// the next <see cref="ReadFrameAsync"/> (the pipe is advanced only there), so a reader can decode
    /// every buffered frame and hand them on together.
    /// </summary>
    /// <exception cref="TcpProtocolException">The next frame's header is impossible.</exception>
    public bool TryTakeBufferedFrame()
    {
        if (!_haveBuffer || !TcpFrame.TryRead(_buffer.Slice(_consumed), _maxFrameBytes, out var type, out var body, out var next))
        {
            return false;
        }

        _consumed = next;
        FrameType = type;
        FrameBody = body;
        OwnedFrameBody = null;
        return true;
    }

    /// <summary>Flushes what was written to <see cref="Writer"/>, failing when the peer takes longer than <paramref name="timeout"/> to accept it.</summary>
    /// <exception cref="TimeoutException">The flush did not complete in time (the peer stopped reading).</exception>
    /// <exception cref="IOException">The connection is closed.</exception>
    public async ValueTask FlushAsync(TimeSpan timeout)
    {
        FlushResult flushed;
        _writeTimeout.CancelAfter(timeout);
        try
        {
            flushed = await Writer.FlushAsync(_writeTimeout.Token);
        }
        catch (OperationCanceledException) when (!_lifetime.IsCancellationRequested)
        {
            throw new TimeoutException($"a write to {RemoteEndPoint} did not complete within {timeout.TotalSeconds:0.###} s");
        }

        if (!_writeTimeout.TryReset())
        {
            throw new TimeoutException($"a write to {RemoteEndPoint} did not complete within {timeout.TotalSeconds:0.###} s");
        }

        if (flushed.IsCompleted || flushed.IsCanceled)
        {
            throw new IOException($"the connection to {RemoteEndPoint} is closed");
        }
    }

    /// <summary>Closes the connection now: pending reads and writes end with an exception. Thread-safe, idempotent.</summary>
    public void Abort()
    {
        try
        {
            _lifetime.Cancel();
        }
        catch (ObjectDisposedException)
        {
            return;
        }

        try
        {
            _socket.Close(0);
        }
        catch (ObjectDisposedException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Abort();
        try
        {
            await Reader.CompleteAsync();
            await Writer.CompleteAsync();
            await _stream.DisposeAsync();
        }
#pragma warning disable CA1031 // Closing a broken stream (a failed TLS close_notify) must not fail the caller.
        catch (Exception)
#pragma warning restore CA1031
        {
        }

        _socket.Dispose();
        _readTimeout.Dispose();
        _writeTimeout.Dispose();
        _lifetime.Dispose();
    }
}
