using System.Net;
using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Transport.Tcp;

/// <summary>
/// The outbound side of one peer: a bounded queue that <see cref="TrySend"/> fills without ever
/// blocking, and a task that keeps one message connection open (reconnecting with exponential
/// backoff and jitter) and drains the queue into it, many messages per frame and many frames per
/// flush.
/// </summary>
/// <remarks>
/// Invariant: at most one connection per sender at a time, written only by the sender's task.
/// When a connection fails, the messages queued at that moment are dropped (stale: Raft resends
/// what matters) and the node is told the peer is unreachable.
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA1001", Justification = "StopAsync, which the transport always awaits, disposes the token source.")]
internal sealed class TcpPeerSender
{
    // Flush after this many bytes of frames even if more messages wait: bounds latency and the
    // pipe's buffered memory.
    private const int FlushThresholdBytes = 256 * 1024;

    // A batch frame closes at this size (a message larger than it travels alone, up to the maximum
    // frame size): the receiver buffers a whole frame before decoding it, so small frames keep its
    // memory and latency low while a flush still carries many of them.
    private const int BatchFrameTargetBytes = 32 * 1024;

    private readonly TcpTransport _transport;
    private readonly TcpTransportOptions _options;
    private readonly TcpSendQueue _queue;
    private readonly CancellationTokenSource _stop = new();
    private readonly Random _jitter;
    private readonly Lock _lock = new();
    private TcpConnection? _current;
    private EndPoint _address;
    private bool _connectedBefore;
    private bool _reportedDown;
    private Task _loop = Task.CompletedTask;

    public TcpPeerSender(TcpTransport transport, ulong peerId, EndPoint address)
    {
        _transport = transport;
        _options = transport.Options;
        PeerId = peerId;
        _address = address;
        _jitter = new Random(unchecked((int)(peerId * 2654435761UL) ^ (int)transport.Options.NodeId));
        _queue = new TcpSendQueue(_options.SendQueueCapacity);
    }

    public ulong PeerId { get; }

    public EndPoint Address
    {
        get { lock (_lock) { return _address; } }
    }

    public void Start() => _loop = Task.Run(RunAsync);

    /// <summary>Queues <paramref name="message"/>; false (and counted) when the queue is full or the sender stopped.</summary>
    public bool TrySend(Message message)
    {
        if (_queue.TryAdd(message))
        {
            return true;
        }

        _transport.Metrics.Dropped(PeerId, _queue.IsCompleted ? "stopped" : "queue_full");
        return false;
    }

    /// <summary>Points the sender at a new address: the current connection is closed and the next one goes there.</summary>
    public void SetAddress(EndPoint address)
    {
        TcpConnection? old;
        lock (_lock)
        {
            if (address.Equals(_address))
            {
                return;
            }

            _address = address;
            old = _current;
        }

        old?.Abort();
    }

    /// <summary>
    /// Stops the sender: no more messages are taken; what is queued is flushed to a connected peer
    /// for at most <paramref name="flushTimeout"/>, then the connection is closed.
    /// </summary>
    public async Task StopAsync(TimeSpan flushTimeout)
    {
        _queue.Complete();
        if (await Task.WhenAny(_loop, Task.Delay(flushTimeout, _options.TimeProvider)) != _loop)
        {
            await _stop.CancelAsync();
            lock (_lock)
            {
                _current?.Abort();
            }
        }

        await _stop.CancelAsync();
        await _loop;
        int left = _queue.Clear();

        if (left > 0)
        {
            _transport.Metrics.Dropped(PeerId, "stopped", left);
        }

        _stop.Dispose();
    }

    private async Task RunAsync()
    {
        int failures = 0;
        while (!_stop.IsCancellationRequested)
        {
            EndPoint address = Address;
            TcpConnection? connection = null;
            try
            {
                connection = await _transport.ConnectAsync(PeerId, address, TcpConnectionKind.Messages, _stop.Token);
                lock (_lock)
                {
                    _current = connection;
                    if (!address.Equals(_address))
                    {
                        // Moved while connecting: go to the new address.
                        connection.Abort();
                    }
                }

                _transport.Metrics.Connected(PeerId, _connectedBefore);
                TcpTransportLog.Connected(_transport.Log, _options.NodeId, PeerId, address, _connectedBefore);
                _connectedBefore = true;
                _reportedDown = false;
                failures = 0;
                if (await PumpAsync(connection))
                {
                    return;
                }
            }
            catch (Exception failure) when (!_stop.IsCancellationRequested && failure is not InvariantViolationException)
            {
                failures++;
                if (!_reportedDown)
                {
                    _reportedDown = true;
                    TcpTransportLog.SendPathDown(_transport.Log, failure, _options.NodeId, PeerId, address);
                }

                DropQueued("disconnected");
                _transport.ReportUnreachable(PeerId);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            finally
            {
                lock (_lock)
                {
                    _current = null;
                }

                if (connection is not null)
                {
                    await connection.DisposeAsync();
                }
            }

            if (_queue.Completion.IsCompleted)
            {
                return;
            }

            // Wait out the backoff; a shutdown with nothing left to flush ends the wait at once.
            await Task.WhenAny(Task.Delay(Backoff(failures), _options.TimeProvider, _stop.Token), _queue.Completion);
            if (_stop.IsCancellationRequested || _queue.Completion.IsCompleted)
            {
                return;
            }
        }
    }

    /// <summary>Drains the queue into <paramref name="connection"/>; true when the queue was completed (shutdown) and everything flushed.</summary>
    private async Task<bool> PumpAsync(TcpConnection connection)
    {
        // A message connection carries nothing back: watching its inbound side tells when the peer
        // closed it (a restart, a refusal after a rule change), so the next message does not wait
        // for a write to fail.
        Task watch = WatchForCloseAsync(connection);
        var writer = connection.Writer;
        var batch = new List<Message>(64);
        var lengths = new List<int>(64);
        int maxBody = _options.MaxFrameSizeBytes;
        int targetBody = Math.Min(maxBody, BatchFrameTargetBytes);

        // Everything queued is taken at once (one lock per batch, not per message); `next` is the
        // first message of `taken` not yet written.
        var taken = new List<Message>(64);
        int next = 0;

        // A keep-alive goes out every interval, with the messages or alone, so the peer's answers
        // (watched by WatchForCloseAsync) and its own silence timer never depend on traffic.
        var clock = _options.TimeProvider;
        long lastKeepAlive = clock.GetTimestamp();
        try
        {
            while (true)
            {
                if (next == taken.Count)
                {
                    taken.Clear();
                    next = 0;
                    if (!_queue.TryTakeAll(ref taken))
                    {
                        var untilKeepAlive = _options.KeepAliveInterval - clock.GetElapsedTime(lastKeepAlive);
                        var outcome = untilKeepAlive <= TimeSpan.Zero
                            ? TcpSendQueue.WaitOutcome.TimedOut
                            : await _queue.WaitToTakeAsync(untilKeepAlive, clock, connection.Lifetime);
                        if (outcome == TcpSendQueue.WaitOutcome.Completed)
                        {
                            return true;
                        }

                        if (outcome == TcpSendQueue.WaitOutcome.TimedOut)
                        {
                            TcpFrame.WriteControl(writer, TcpFrameType.KeepAlive);
                            lastKeepAlive = clock.GetTimestamp();
                            await connection.FlushAsync(_options.WriteTimeout);
                            _transport.Metrics.Sent(PeerId, TcpFrame.HeaderSizeBytes, 0);
                        }

                        continue;
                    }
                }

                long unflushed = 0;
                int messages = 0;
                while (unflushed < FlushThresholdBytes)
                {
                    if (next == taken.Count)
                    {
                        taken.Clear();
                        next = 0;
                        if (!_queue.TryTakeAll(ref taken))
                        {
                            // The queue is empty: flush what was written.
                            break;
                        }
                    }

                    batch.Clear();
                    lengths.Clear();
                    int body = 0;
                    for (; next < taken.Count; next++)
                    {
                        var message = taken[next];
                        int length = MessageCodec.GetEncodedLength(message);
                        int size = TcpFrame.VarintSize((uint)length) + length;
                        if (size > maxBody)
                        {
                            _transport.Metrics.Dropped(PeerId, "oversize");
                            TcpTransportLog.Oversize(_transport.Log, _options.NodeId, message.Type, length, PeerId, maxBody);
                            continue;
                        }

                        if (body > 0 && body + size > targetBody)
                        {
                            // The frame is full: this message starts the next one.
                            break;
                        }

                        batch.Add(message);
                        lengths.Add(length);
                        body += size;
                    }

                    if (batch.Count > 0)
                    {
                        WriteFrame(writer, batch, lengths, body);
                        unflushed += TcpFrame.HeaderSizeBytes + body;
                        messages += batch.Count;
                    }
                }

                if (unflushed > 0)
                {
                    if (clock.GetElapsedTime(lastKeepAlive) >= _options.KeepAliveInterval)
                    {
                        TcpFrame.WriteControl(writer, TcpFrameType.KeepAlive);
                        unflushed += TcpFrame.HeaderSizeBytes;
                        lastKeepAlive = clock.GetTimestamp();
                    }

                    await connection.FlushAsync(_options.WriteTimeout);
                    _transport.Metrics.Sent(PeerId, unflushed, messages);
                }
            }
        }
        catch (OperationCanceledException) when (!_stop.IsCancellationRequested)
        {
            throw new IOException($"the connection to peer {PeerId} was closed");
        }
        finally
        {
            // Messages taken but not written die with the connection, counted like the queued ones.
            if (taken.Count > next)
            {
                _transport.Metrics.Dropped(PeerId, "disconnected", taken.Count - next);
            }

            connection.Abort();
            await watch;
        }
    }

    // The whole frame in one span of the pipe (at most a batch frame's target size, or one message
    // that travels alone): one GetSpan and one Advance per frame, not per message.
    internal static void WriteFrame(System.IO.Pipelines.PipeWriter writer, List<Message> batch, List<int> lengths, int body)
    {
        int total = TcpFrame.HeaderSizeBytes + body;
        Span<byte> frame = writer.GetSpan(total)[..total];
        TcpFrame.WriteHeader(frame, TcpFrameType.Messages, body);
        int at = TcpFrame.HeaderSizeBytes;
        for (int i = 0; i < batch.Count; i++)
        {
            int length = lengths[i];
            at += TcpFrame.WriteVarint(frame[at..], (uint)length);
            int written = MessageCodec.EncodeUnchecked(batch[i], frame.Slice(at, length));
            if (written != length)
            {
                throw new InvariantViolationException($"Message encoded to {written} bytes; its encoded length said {length}.");
            }

            at += length;
        }

        if (at != total)
        {
            throw new InvariantViolationException($"A frame of {at} bytes where its header said {total}.");
        }

        writer.Advance(total);
    }

    /// <summary>
    /// Reads the peer's side of a message connection: keep-alive answers, nothing else. Anything
    /// else, the end of the stream, or silence longer than the keep-alive timeout (a dead peer or a
    /// black-holed path) closes the connection, which fails the pump and reconnects.
    /// </summary>
    private async Task WatchForCloseAsync(TcpConnection connection)
    {
        try
        {
            while (await connection.ReadFrameAsync(_options.KeepAliveTimeout) && connection.FrameType == TcpFrameType.KeepAliveAck)
            {
                _transport.Metrics.KeepAliveAcked();
            }
        }
        catch (TimeoutException) when (!connection.Lifetime.IsCancellationRequested)
        {
            _transport.Metrics.KeepAliveTimedOut(PeerId, outbound: true);
            TcpTransportLog.KeepAliveTimedOut(_transport.Log, _options.NodeId, "to", PeerId, connection.RemoteEndPoint, _options.KeepAliveTimeout.TotalSeconds);
        }
#pragma warning disable CA1031 // Whatever ended the read, the connection is done.
        catch (Exception)
#pragma warning restore CA1031
        {
        }

        connection.Abort();
    }

    private void DropQueued(string reason)
    {
        int dropped = _queue.Clear();
        if (dropped > 0)
        {
            _transport.Metrics.Dropped(PeerId, reason, dropped);
        }
    }

    private TimeSpan Backoff(int failures)
    {
        double factor = Math.Pow(2, Math.Min(failures - 1, 20));
        double ceiling = Math.Min(_options.ReconnectMinDelay.TotalMilliseconds * factor, _options.ReconnectMaxDelay.TotalMilliseconds);
        double jittered = ceiling * (0.5 + (0.5 * _jitter.NextDouble()));
        return TimeSpan.FromMilliseconds(jittered);
    }
}
