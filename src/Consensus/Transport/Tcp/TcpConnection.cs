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
                    return true;
                }

                partial = !rest.IsEmpty;
                Reader.AdvanceTo(_consumed, _buffer.End);
                _haveBuffer = false;
                FrameBody = default;
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
