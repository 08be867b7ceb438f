using System.Buffers;
using System.Net;
using System.Net.Sockets;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Consensus.Transport.Tcp;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Transport.Tcp;

/// <summary>
/// The receiving side hands a frame's messages to the node in one
/// <see cref="IRaftMessageReceiver.ReceiveBatch"/> call, in the frame's order; a receiver written for
/// one message at a time (only <see cref="IRaftMessageReceiver.Receive"/>) still gets every message,
/// in order. The frames are written by hand on a raw socket that speaks the handshake, so which
/// messages share a frame is the test's choice, not the sender's timing.
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public class TcpBatchHandOffTests
{
    [Test]
    public async Task AFramesMessagesArriveInOrderAsOneBatch()
    {
        var receiver = new BatchRecordingReceiver(expectedMessages: 8);
        await using var node = await NodeWithPeerAsync(receiver);
        var first = Enumerable.Range(1, 5).Select(i => Append(index: (ulong)i, entryBytes: i * 10)).ToArray();
        var second = new[] { Heartbeat(commit: 5), Append(index: 6, entryBytes: 0), Heartbeat(commit: 6) };

        await using (var peer = await RawPeer.ConnectAsync(node.LocalEndPoint))
        {
            await peer.SendFramesAsync(first, second);
            await receiver.AllArrived.WaitAsync(Waits.Limit);
        }

        Assert.That(receiver.Batches.Select(b => b.Length), Is.EqualTo(new[] { 5, 3 }), "one batch per frame");
        Assert.That(receiver.SingleCalls, Is.Zero, "nothing came one message at a time");
        AssertSameSequence(receiver.Batches.SelectMany(b => b), [.. first, .. second]);
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
            await peer.SendFramesAsync(frame);
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

        /// <summary>Writes each array as one Messages frame, all frames in one send.</summary>
        public async Task SendFramesAsync(params Message[][] frames)
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

            await _socket.SendAsync(bytes.ToArray(), SocketFlags.None);
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
        private int _messages;
        private int _singleCalls;

        public Task AllArrived => _all.Task;

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
            }
        }
    }
}
