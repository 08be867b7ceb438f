using System.Buffers;
using System.Net;
using System.Net.Sockets;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Consensus.Transport.Tcp;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Transport.Tcp;

/// <summary>
/// The receiving side hands the messages of every frame one read brought in to the node in one
/// <see cref="IRaftMessageReceiver.ReceiveBatch"/> call, in order (frames sent in one write arrive
/// together on loopback; a frame that comes later is a hand-off of its own: the reader never waits
/// for more); a receiver written for one message at a time (only <see cref="IRaftMessageReceiver.Receive"/>)
/// still gets every message, in order; a keep-alive among the frames is answered; a bad frame
/// loses only itself (the frames before it still arrive) and closes the connection. The frames
/// are written by hand on a raw socket that speaks the handshake, so which messages share a frame
/// and a write is the test's choice, not the sender's timing.
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public class TcpBatchHandOffTests
{
    [Test]
    public async Task FramesThatArriveTogetherReachTheNodeInOrderAsOneBatch()
    {
        var receiver = new BatchRecordingReceiver(expectedMessages: 8);
        await using var node = await NodeWithPeerAsync(receiver);
        var first = Enumerable.Range(1, 5).Select(i => Append(index: (ulong)i, entryBytes: i * 10)).ToArray();
        var second = new[] { Heartbeat(commit: 5), Append(index: 6, entryBytes: 0), Heartbeat(commit: 6) };

        await using (var peer = await RawPeer.ConnectAsync(node.LocalEndPoint))
        {
            await peer.SendAsync(Frames(first, second));
            await receiver.AllArrived.WaitAsync(Waits.Limit);
        }

        Assert.That(receiver.Batches.Select(b => b.Length), Is.EqualTo(new[] { 8 }), "both frames of the one write in one hand-off");
        Assert.That(receiver.SingleCalls, Is.Zero, "nothing came one message at a time");
        AssertSameSequence(receiver.Batches.SelectMany(b => b), [.. first, .. second]);
    }

    [Test]
    public async Task AFrameThatArrivesLaterIsAHandOffOfItsOwn()
    {
        var receiver = new BatchRecordingReceiver(expectedMessages: 5);
        await using var node = await NodeWithPeerAsync(receiver);
        var first = Enumerable.Range(1, 5).Select(i => Append(index: (ulong)i, entryBytes: 20)).ToArray();
        var second = new[] { Heartbeat(commit: 5), Append(index: 6, entryBytes: 30) };

        await using (var peer = await RawPeer.ConnectAsync(node.LocalEndPoint))
        {
            await peer.SendAsync(Frames(first));
            await receiver.AllArrived.WaitAsync(Waits.Limit);
            var both = receiver.Expect(7);
            await peer.SendAsync(Frames(second));
            await both.WaitAsync(Waits.Limit);
        }

        Assert.That(receiver.Batches.Select(b => b.Length), Is.EqualTo(new[] { 5, 2 }), "the first frame was handed on without waiting for the second");
        AssertSameSequence(receiver.Batches.SelectMany(b => b), [.. first, .. second]);
    }

    [Test]
    public async Task AKeepAliveAmongTheFramesIsAnsweredAndTheFramesStillGoTogether()
    {
        var receiver = new BatchRecordingReceiver(expectedMessages: 4);
        await using var node = await NodeWithPeerAsync(receiver);
        var first = new[] { Append(index: 1, entryBytes: 40), Append(index: 2, entryBytes: 50) };
        var second = new[] { Heartbeat(commit: 2), Append(index: 3, entryBytes: 60) };

        await using (var peer = await RawPeer.ConnectAsync(node.LocalEndPoint))
        {
            await peer.SendAsync([.. Frames(first), .. KeepAliveFrame(), .. Frames(second)]);
            await receiver.AllArrived.WaitAsync(Waits.Limit);
            var answer = await peer.ReceiveAsync(TcpFrame.HeaderSizeBytes);
            Assert.That(answer, Is.Not.Null, "the node closed the connection instead of answering the keep-alive");
            Assert.That((TcpFrameType)answer![0], Is.EqualTo(TcpFrameType.KeepAliveAck));
        }

        Assert.That(receiver.Batches.Select(b => b.Length), Is.EqualTo(new[] { 4 }), "the keep-alive between them did not split the hand-off");
        AssertSameSequence(receiver.Batches.SelectMany(b => b), [.. first, .. second]);
    }

    [Test]
    public async Task TheFramesBeforeABadFrameStillArriveAndNothingOfTheBadOneDoes()
    {
        var receiver = new BatchRecordingReceiver(expectedMessages: 3);
        await using var node = await NodeWithPeerAsync(receiver);
        var good = new[] { Append(index: 1, entryBytes: 10), Heartbeat(commit: 1), Append(index: 2, entryBytes: 10) };

        // The bad frame's first message is well formed; its second claims to come from node 3 on
        // node 1's connection.
        var bad = new[] { Append(index: 3, entryBytes: 10), new Message { Type = MessageType.Heartbeat, From = 3, To = 2, Term = 3 } };

        await using (var peer = await RawPeer.ConnectAsync(node.LocalEndPoint))
        {
            await peer.SendAsync(Frames(good, bad));
            await receiver.AllArrived.WaitAsync(Waits.Limit);
            Assert.That(await peer.ReceiveAsync(1), Is.Null, "the node closed the connection after the bad frame");
        }

        AssertSameSequence(receiver.Batches.SelectMany(b => b), good);
    }

    [Test]
    public async Task AReceiverThatTakesOneMessageAtATimeGetsEveryMessageOfAFrameInOrder()
    {
        // RecordingReceiver implements Receive only, as receivers written before the batch entry point do.
        var receiver = new RecordingReceiver();
        await using var node = await NodeWithPeerAsync(receiver);
        var frame = Enumerable.Range(1, 7).Select(i => i % 3 == 0 ? Heartbeat(commit: (ulong)i) : Append(index: (ulong)i, entryBytes: 100)).ToArray();

        await using (var peer = await RawPeer.ConnectAsync(node.LocalEndPoint))
        {
            await peer.SendAsync(Frames(frame));
            await receiver.UntilReceived(7).WaitAsync(Waits.Limit);
        }

        AssertSameSequence(receiver.ReceivedNow, frame);
    }

    private static async Task<TcpTransport> NodeWithPeerAsync(IRaftMessageReceiver receiver)
    {
        // Node 2 knows peer 1 (at an address nobody listens on: only the inbound side is used).
        var node = new TcpTransport(new TcpTransportOptions
        {
            NodeId = 2,
            Peers = new Dictionary<ulong, string> { [1] = "127.0.0.1:9" },
            ReconnectMinDelay = TimeSpan.FromSeconds(1),
        });
        try
        {
            node.Bind(2, receiver);
            return node;
        }
        catch
        {
            await node.DisposeAsync();
            throw;
        }
    }

    private static Message Append(ulong index, int entryBytes) => new()
    {
        Type = MessageType.Append,
        From = 1,
        To = 2,
        Term = 3,
        LogTerm = 3,
        Index = index - 1,
        Commit = index - 1,
        Entries = new[] { new Entry(3, index, EntryType.Normal, Enumerable.Range(0, entryBytes).Select(b => (byte)(b + (int)index)).ToArray()) },
    };

    /// <summary>Each array as one Messages frame, the frames back to back.</summary>
    private static byte[] Frames(params Message[][] frames)
    {
        var bytes = new List<byte>();
        foreach (var frame in frames)
        {
            var body = new List<byte>();
            foreach (var message in frame)
            {
                var encoded = MessageCodec.Encode(message);
                var prefix = new byte[5];
                body.AddRange(prefix.AsSpan(0, TcpFrame.WriteVarint(prefix, (uint)encoded.Length)).ToArray());
                body.AddRange(encoded);
            }

            var header = new byte[TcpFrame.HeaderSizeBytes];
            TcpFrame.WriteHeader(header, TcpFrameType.Messages, body.Count);
            bytes.AddRange(header);
            bytes.AddRange(body);
        }

        return [.. bytes];
    }

    private static byte[] KeepAliveFrame()
    {
        var header = new byte[TcpFrame.HeaderSizeBytes];
        TcpFrame.WriteHeader(header, TcpFrameType.KeepAlive, 0);
        return header;
    }

    private static Message Heartbeat(ulong commit) => new() { Type = MessageType.Heartbeat, From = 1, To = 2, Term = 3, Commit = commit };

    private static void AssertSameSequence(IEnumerable<Message> actual, IReadOnlyList<Message> expected)
    {
        var got = actual.ToList();
        Assert.That(got, Has.Count.EqualTo(expected.Count));
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.That((got[i].Type, got[i].Index, got[i].Commit), Is.EqualTo((expected[i].Type, expected[i].Index, expected[i].Commit)), $"message {i}");
            Assert.That(got[i].Entries.Length, Is.EqualTo(expected[i].Entries.Length), $"entries of message {i}");
            for (int e = 0; e < expected[i].Entries.Length; e++)
            {
                Assert.That(got[i].Entries.Span[e], Is.EqualTo(expected[i].Entries.Span[e]), $"entry {e} of message {i}");
            }
        }
    }

    /// <summary>Peer 1, by hand: a socket that sends the handshake, then whatever frames the test writes.</summary>
    private sealed class RawPeer : IAsyncDisposable
    {
        private readonly Socket _socket;

        private RawPeer(Socket socket) => _socket = socket;

        public static async Task<RawPeer> ConnectAsync(IPEndPoint node)
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(node).WaitAsync(Waits.Limit);
                var hello = new ArrayBufferWriter<byte>();
                TcpFrame.WriteHello(hello, new TcpHello(TcpFrame.ProtocolVersion, TcpConnectionKind.Messages, ClusterId: 0, SenderId: 1, ReceiverId: 2));
                await socket.SendAsync(hello.WrittenMemory, SocketFlags.None);

                // The answer: a HelloAccepted frame (a header with an empty body).
                var answer = new byte[TcpFrame.HeaderSizeBytes];
                int read = 0;
                while (read < answer.Length)
                {
                    int n = await socket.ReceiveAsync(answer.AsMemory(read), SocketFlags.None).AsTask().WaitAsync(Waits.Limit);
                    Assert.That(n, Is.GreaterThan(0), "the node closed the connection during the handshake");
                    read += n;
                }

                Assert.That((TcpFrameType)answer[0], Is.EqualTo(TcpFrameType.HelloAccepted));
                return new RawPeer(socket);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }

        /// <summary>Writes <paramref name="bytes"/> in one send.</summary>
        public async Task SendAsync(byte[] bytes) => await _socket.SendAsync(bytes, SocketFlags.None);

        /// <summary>Reads exactly <paramref name="count"/> bytes; null when the node closed the connection first.</summary>
        public async Task<byte[]?> ReceiveAsync(int count)
        {
            var bytes = new byte[count];
            int read = 0;
            while (read < count)
            {
                int n;
                try
                {
                    n = await _socket.ReceiveAsync(bytes.AsMemory(read), SocketFlags.None).AsTask().WaitAsync(Waits.Limit);
                }
                catch (SocketException)
                {
                    return null; // reset by the node
                }

                if (n == 0)
                {
                    return null;
                }

                read += n;
            }

            return bytes;
        }

        public ValueTask DisposeAsync()
        {
            _socket.Dispose();
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>Records each batch as handed over (a copy: the span is the transport's).</summary>
    private sealed class BatchRecordingReceiver(int expectedMessages) : IRaftMessageReceiver
    {
        private readonly Lock _lock = new();
        private readonly List<Message[]> _batches = [];
        private readonly TaskCompletionSource _all = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private TaskCompletionSource? _later;
        private int _laterCount;
        private int _messages;
        private int _singleCalls;

        /// <summary>Completes once the first <c>expectedMessages</c> have arrived.</summary>
        public Task AllArrived => _all.Task;

        /// <summary>Completes once <paramref name="messages"/> in all have arrived.</summary>
        public Task Expect(int messages)
        {
            lock (_lock)
            {
                _later = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _laterCount = messages;
                if (_messages >= messages)
                {
                    _later.TrySetResult();
                }

                return _later.Task;
            }
        }

        public List<Message[]> Batches { get { lock (_lock) { return [.. _batches]; } } }

        public int SingleCalls { get { lock (_lock) { return _singleCalls; } } }

        public void Receive(Message message)
        {
            lock (_lock)
            {
                _singleCalls++;
            }

            Record([message]);
        }

        public void ReceiveBatch(ReadOnlySpan<Message> messages) => Record(messages.ToArray());

        public ValueTask ReceiveSnapshotAsync(Message snapshotMessage, Stream data, CancellationToken cancellationToken) => throw new NotSupportedException();

        public void ReportUnreachable(ulong peerId)
        {
        }

        private void Record(Message[] batch)
        {
            lock (_lock)
            {
                _batches.Add(batch);
                _messages += batch.Length;
                if (_messages >= expectedMessages)
                {
                    _all.TrySetResult();
                }

                if (_later is not null && _messages >= _laterCount)
                {
                    _later.TrySetResult();
                }
            }
        }
    }
}
