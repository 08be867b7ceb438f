using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Consensus.Transport.Tcp;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Transport.Tcp;

/// <summary>Two transports on loopback, no Raft: shutdown flushes the queue, a message over the frame size is dropped alone, a removed peer is refused.</summary>
[TestFixture]
[CancelAfter(120_000)]
public class TcpTransportPairTests
{
    [Test]
    public async Task DisposingFlushesWhatIsQueuedBeforeClosing()
    {
        await using var receiving = new TcpTransport(new TcpTransportOptions { NodeId = 2 });
        var counter = new CountingReceiver(1000);
        using var binding = receiving.Bind(2, counter);
        var sending = new TcpTransport(new TcpTransportOptions { NodeId = 1, ShutdownFlushTimeout = Waits.Limit });
        receiving.SetPeerAddress(1, sending.LocalEndPoint.ToString());
        sending.SetPeerAddress(2, receiving.LocalEndPoint.ToString());

        for (int i = 0; i < 1000; i++)
        {
            sending.Send(Heartbeat(1, 2, (ulong)i + 1));
        }

        await sending.DisposeAsync();

        await counter.AllArrived.WaitAsync(Waits.Limit);
        Assert.That(counter.Terms, Is.EqualTo(Enumerable.Range(1, 1000).Select(i => (ulong)i)), "every queued message, in order");
    }

    [Test]
    public async Task AMessageOverTheFrameSizeIsDroppedAloneAndTheRestArrive()
    {
        var log = new SignalingLogger();
        await using var receiving = new TcpTransport(new TcpTransportOptions { NodeId = 2, MaxFrameSizeBytes = 8192, SnapshotChunkSizeBytes = 4096 });
        var counter = new CountingReceiver(2);
        using var binding = receiving.Bind(2, counter);
        await using var sending = new TcpTransport(new TcpTransportOptions { NodeId = 1, MaxFrameSizeBytes = 8192, SnapshotChunkSizeBytes = 4096, Logger = log });
        receiving.SetPeerAddress(1, sending.LocalEndPoint.ToString());
        sending.SetPeerAddress(2, receiving.LocalEndPoint.ToString());
        var oversize = log.NextAsync("Oversize");

        sending.Send(Heartbeat(1, 2, 1));
        sending.Send(new Message { Type = MessageType.Append, From = 1, To = 2, Term = 2, Entries = new[] { new Entry(2, 1, EntryType.Normal, new byte[10_000]) } });
        sending.Send(Heartbeat(1, 2, 3));

        await counter.AllArrived.WaitAsync(Waits.Limit);
        await oversize;
        Assert.That(counter.Terms, Is.EqualTo(new ulong[] { 1, 3 }));
        Assert.That(sending.Metrics.MessagesDropped, Is.EqualTo(1));
    }

    [Test]
    public async Task ARemovedPeerIsRefusedAndItsConnectionClosed()
    {
        var log = new SignalingLogger();
        await using var receiving = new TcpTransport(new TcpTransportOptions { NodeId = 2, Logger = log });
        var counter = new CountingReceiver(1);
        using var binding = receiving.Bind(2, counter);
        await using var sending = new TcpTransport(new TcpTransportOptions { NodeId = 1, ReconnectMinDelay = TimeSpan.FromMilliseconds(10), ReconnectMaxDelay = TimeSpan.FromMilliseconds(50) });
        receiving.SetPeerAddress(1, sending.LocalEndPoint.ToString());
        sending.SetPeerAddress(2, receiving.LocalEndPoint.ToString());
        sending.Send(Heartbeat(1, 2, 1));
        await counter.AllArrived.WaitAsync(Waits.Limit);

        var refused = log.NextAsync("HandshakeRefused");
        await receiving.RemovePeer(1);
        sending.Send(Heartbeat(1, 2, 2));

        var entry = await refused;
        Assert.That(entry.Message, Does.Contain("not a member of this node's peer list"));
        Assert.That(counter.Terms, Is.EqualTo(new ulong[] { 1 }), "nothing from the removed peer after its removal");
    }

    [Test]
    public async Task ASnapshotStreamsInChunksAndArrivesWholeAndAReceiverThatFailsToSaveFailsTheSender()
    {
        await using var receiving = new TcpTransport(new TcpTransportOptions { NodeId = 2, SnapshotChunkSizeBytes = 4096 });
        var receiver = new RecordingReceiver();
        using var binding = receiving.Bind(2, receiver);
        await using var sending = new TcpTransport(new TcpTransportOptions { NodeId = 1, SnapshotChunkSizeBytes = 4096 });
        receiving.SetPeerAddress(1, sending.LocalEndPoint.ToString());
        sending.SetPeerAddress(2, receiving.LocalEndPoint.ToString());
        var data = new byte[1_000_003];
        new Random(1430).NextBytes(data);
        var snapshot = new Message { Type = MessageType.Snapshot, From = 1, To = 2, Term = 3, Snapshot = new SnapshotMetadata(500, 3, new ConfState([1, 2])) };

        await sending.SendSnapshotAsync(snapshot, new MemoryStream(data), CancellationToken.None).AsTask().WaitAsync(Waits.Limit);

        Assert.That(receiver.Snapshots, Has.Count.EqualTo(1));
        Assert.That(receiver.Snapshots[0].Message.Snapshot, Is.EqualTo(snapshot.Snapshot));
        Assert.That(receiver.Snapshots[0].Data, Is.EqualTo(data), "byte for byte, across about 245 chunks");

        receiver.SnapshotFailure = (100_000, new InvalidOperationException("disk full"));
        var failed = Assert.ThrowsAsync<IOException>(async () => await sending.SendSnapshotAsync(snapshot, new MemoryStream(data), CancellationToken.None).AsTask().WaitAsync(Waits.Limit));
        Assert.That(failed!.Message, Does.Contain("disk full"), "the receiver's reason comes back to the sender");
        Assert.That(sending.Metrics.SnapshotsSent, Is.EqualTo(1));
        Assert.That(sending.Metrics.SnapshotsFailed, Is.EqualTo(1));
    }

    private static Message Heartbeat(ulong from, ulong to, ulong term) => new() { Type = MessageType.Heartbeat, From = from, To = to, Term = term };

    private sealed class CountingReceiver(int expected) : IRaftMessageReceiver
    {
        private readonly Lock _lock = new();
        private readonly List<ulong> _terms = [];
        private readonly TaskCompletionSource _all = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task AllArrived => _all.Task;

        public IReadOnlyList<ulong> Terms { get { lock (_lock) { return [.. _terms]; } } }

        public void Receive(Message message)
        {
            lock (_lock)
            {
                _terms.Add(message.Term);
                if (_terms.Count >= expected)
                {
                    _all.TrySetResult();
                }
            }
        }

        public ValueTask ReceiveSnapshotAsync(Message snapshotMessage, Stream data, CancellationToken cancellationToken) => throw new NotSupportedException();

        public void ReportUnreachable(ulong peerId)
        {
        }
    }
}
