using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Transport;

/// <summary>
/// Snapshots over the in-process network: streamed in pieces through a bounded pipe (never whole
/// in memory), complete only when the receiver has taken them, fail on both ends when the link or
/// either side fails, and run entirely on the sender's scheduler.
/// </summary>
[TestFixture]
public sealed class InProcessSnapshotStreamingTests
{
    private const int ChunkSizeBytes = 4096;

    private static Message SnapshotMessage(ulong from, ulong to) => new()
    {
        Type = MessageType.Snapshot,
        From = from,
        To = to,
        Term = 2,
        Snapshot = new SnapshotMetadata(Index: 100, Term: 2, new ConfState(voters: [1, 2])),
    };

    private static byte[] Data(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    private static (InProcessNetwork Network, IRaftTransport Sender, RecordingReceiver SenderReceiver, RecordingReceiver Receiver) Pair()
    {
        var network = new InProcessNetwork(new InProcessNetworkOptions { SnapshotChunkSizeBytes = ChunkSizeBytes });
        var sender = network.CreateTransport(1);
        var senderReceiver = new RecordingReceiver();
        sender.Bind(1, senderReceiver);
        var receiver = new RecordingReceiver();
        network.CreateTransport(2).Bind(2, receiver);
        return (network, sender, senderReceiver, receiver);
    }

    [Test]
    public async Task ASnapshotOfManyChunksArrivesWholeWhileNeverMoreThanThreeChunksAreBuffered()
    {
        var (network, sender, _, receiver) = Pair();
        using var _ = network;
        byte[] data = Data((ChunkSizeBytes * 25) + 123, seed: 1);
        var source = new CountingStream(data);
        long mostBuffered = 0;
        receiver.OnSnapshotBytes = received => mostBuffered = Math.Max(mostBuffered, source.BytesRead - received);

        await sender.SendSnapshotAsync(SnapshotMessage(1, 2), source, CancellationToken.None);

        Assert.That(receiver.Snapshots, Has.Count.EqualTo(1));
        Assert.That(receiver.Snapshots[0].Data, Is.EqualTo(data));
        Assert.That(receiver.Snapshots[0].Message.Snapshot!.Index, Is.EqualTo(100));
        Assert.That(network.SnapshotChunks, Is.EqualTo(26));
        Assert.That(network.SnapshotsDelivered, Is.EqualTo(1));
        Assert.That(mostBuffered, Is.LessThanOrEqualTo(3 * ChunkSizeBytes), "read from the source but not yet by the receiver");
    }

    [Test]
    public async Task AnEmptySnapshotIsDelivered()
    {
        var (network, sender, _, receiver) = Pair();
        using var _ = network;

        await sender.SendSnapshotAsync(SnapshotMessage(1, 2), new MemoryStream(), CancellationToken.None);

        Assert.That(receiver.Snapshots.Single().Data, Is.Empty);
    }

    [Test]
    public void ASnapshotToAPeerThatIsNotRunningFailsAndReportsItUnreachable()
    {
        var (network, sender, senderReceiver, _) = Pair();
        using var _ = network;

        var thrown = Assert.ThrowsAsync<PeerUnreachableException>(
            async () => await sender.SendSnapshotAsync(SnapshotMessage(1, 3), new MemoryStream(Data(10, 2)), CancellationToken.None));

        Assert.That(thrown!.PeerId, Is.EqualTo(3));
        Assert.That(senderReceiver.Unreachable, Is.EqualTo(new ulong[] { 3 }));
        Assert.That(network.SnapshotsFailed, Is.EqualTo(1));
    }

    [Test]
    public void ALinkCutDuringTheTransferFailsItOnBothEnds()
    {
        var (network, sender, _, receiver) = Pair();
        using var _ = network;
        receiver.OnSnapshotBytes = received =>
        {
            if (received >= 3 * ChunkSizeBytes)
            {
                network.Isolate(2);
            }
        };

        Assert.ThrowsAsync<PeerUnreachableException>(
            async () => await sender.SendSnapshotAsync(SnapshotMessage(1, 2), new MemoryStream(Data(ChunkSizeBytes * 20, 3)), CancellationToken.None));

        Assert.That(receiver.Snapshots, Is.Empty, "the receiver never saw the end of the stream");
        Assert.That(network.SnapshotsFailed, Is.EqualTo(1));
    }

    [Test]
    public void AReceiverThatFailsToSaveFailsTheSend()
    {
        var (network, sender, _, receiver) = Pair();
        using var _ = network;
        receiver.SnapshotFailure = (2 * ChunkSizeBytes, new IOException("disk full"));

        var thrown = Assert.ThrowsAsync<IOException>(
            async () => await sender.SendSnapshotAsync(SnapshotMessage(1, 2), new MemoryStream(Data(ChunkSizeBytes * 20, 4)), CancellationToken.None));

        Assert.That(thrown!.Message, Is.EqualTo("disk full"));
    }

    [Test]
    public void ASourceThatFailsFailsTheSendWithItsOwnError()
    {
        var (network, sender, _, receiver) = Pair();
        using var _ = network;
        var source = new CountingStream(Data(ChunkSizeBytes * 10, 5)) { FailAfterBytes = 3 * ChunkSizeBytes };

        var thrown = Assert.ThrowsAsync<IOException>(
            async () => await sender.SendSnapshotAsync(SnapshotMessage(1, 2), source, CancellationToken.None));

        Assert.That(thrown!.Message, Does.Contain("source failed"));
        Assert.That(receiver.Snapshots, Is.Empty);
    }

    [Test]
    public void ANonSnapshotMessageIsRefused()
    {
        var (network, sender, _, _) = Pair();
        using var owned = network;

        var thrown = Assert.ThrowsAsync<ArgumentException>(async () => await sender.SendSnapshotAsync(new Message { Type = MessageType.Append, From = 1, To = 2 }, new MemoryStream(), CancellationToken.None));
        Assert.That(thrown!.ParamName, Is.EqualTo("snapshotMessage"));
    }

    [Test]
    public void OnADeterministicSchedulerTheWholeTransferRunsOnTheSchedulersThread()
    {
        var (network, sender, _, receiver) = Pair();
        using var _ = network;
        var scheduler = new DeterministicTaskScheduler();
        byte[] data = Data(ChunkSizeBytes * 8, 6);

        Task transfer = scheduler.Run(async () => await sender.SendSnapshotAsync(SnapshotMessage(1, 2), new MemoryStream(data), CancellationToken.None));
        Assert.That(transfer.IsCompleted, Is.False, "nothing runs until the scheduler is driven");
        scheduler.RunUntilIdle();

        Assert.That(transfer.IsCompletedSuccessfully, Is.True);
        Assert.That(receiver.Snapshots.Single().Data, Is.EqualTo(data));
        Assert.That(receiver.SnapshotThreadIds.Distinct(), Is.EqualTo(new[] { Environment.CurrentManagedThreadId }));
    }

    /// <summary>A read-only stream over bytes that counts what was read and can fail part-way.</summary>
    private sealed class CountingStream(byte[] data) : Stream
    {
        private readonly MemoryStream _inner = new(data);

        public long BytesRead { get; private set; }

        public long? FailAfterBytes { get; init; }

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            if (FailAfterBytes is { } limit && BytesRead >= limit)
            {
                throw new IOException("source failed");
            }

            int read = _inner.Read(buffer, offset, count);
            BytesRead += read;
            return read;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
