using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Consensus.Transport.Tcp;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Transport.Tcp;

/// <summary>
/// <see cref="TcpTransport.SendBatch"/>: each run of messages to one peer is queued in one step,
/// and the batch behaves as the same messages sent one by one would: each peer gets its messages in
/// order, a peer without an address is reported unreachable without holding up the others, a run
/// longer than the room left in its queue keeps its first messages, and a null is refused before
/// anything is queued.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public class TcpSendBatchTests
{
    [Test]
    public async Task ABatchToSeveralPeersArrivesAtEachPeerInItsOrder()
    {
        await using var sending = new TcpTransport(new TcpTransportOptions { NodeId = 1 });
        await using var two = new TcpTransport(new TcpTransportOptions { NodeId = 2 });
        await using var three = new TcpTransport(new TcpTransportOptions { NodeId = 3 });
        var atTwo = new RecordingReceiver();
        var atThree = new RecordingReceiver();
        using var twoBinding = two.Bind(2, atTwo);
        using var threeBinding = three.Bind(3, atThree);
        two.SetPeerAddress(1, sending.LocalEndPoint.ToString());
        three.SetPeerAddress(1, sending.LocalEndPoint.ToString());
        sending.SetPeerAddress(2, two.LocalEndPoint.ToString());
        sending.SetPeerAddress(3, three.LocalEndPoint.ToString());

        // Runs of one and of several messages per peer, interleaved.
        sending.SendBatch([Heartbeat(2, 1), Heartbeat(2, 2), Heartbeat(3, 1), Heartbeat(2, 3), Heartbeat(3, 2), Heartbeat(3, 3), Heartbeat(3, 4)]);

        await atTwo.UntilReceived(3).WaitAsync(Waits.Limit);
        await atThree.UntilReceived(4).WaitAsync(Waits.Limit);
        Assert.That(atTwo.ReceivedNow.Select(m => m.Term), Is.EqualTo(new ulong[] { 1, 2, 3 }));
        Assert.That(atThree.ReceivedNow.Select(m => m.Term), Is.EqualTo(new ulong[] { 1, 2, 3, 4 }));
        Assert.That(sending.Metrics.MessagesDropped, Is.Zero);
    }

    [Test]
    public async Task APeerWithoutAnAddressIsReportedUnreachableAndTheRestOfTheBatchIsSent()
    {
        await using var sending = new TcpTransport(new TcpTransportOptions { NodeId = 1 });
        await using var two = new TcpTransport(new TcpTransportOptions { NodeId = 2 });
        var atOne = new RecordingReceiver();
        var atTwo = new RecordingReceiver();
        using var oneBinding = sending.Bind(1, atOne);
        using var twoBinding = two.Bind(2, atTwo);
        two.SetPeerAddress(1, sending.LocalEndPoint.ToString());
        sending.SetPeerAddress(2, two.LocalEndPoint.ToString());

        sending.SendBatch([Heartbeat(9, 1), Heartbeat(9, 2), Heartbeat(2, 3)]);

        await atTwo.UntilReceived(1).WaitAsync(Waits.Limit);
        Assert.That(atTwo.ReceivedNow.Select(m => m.Term), Is.EqualTo(new ulong[] { 3 }));
        Assert.That(atOne.UnreachableNow, Is.EqualTo(new ulong[] { 9 }), "one report for the run to the unknown peer");
        Assert.That(sending.Metrics.MessagesDropped, Is.EqualTo(2), "both messages to the unknown peer counted");
    }

    [Test]
    public async Task ANullInABatchIsRefusedBeforeAnyOfItIsQueued()
    {
        await using var sending = new TcpTransport(new TcpTransportOptions { NodeId = 1 });
        await using var two = new TcpTransport(new TcpTransportOptions { NodeId = 2 });
        var atTwo = new RecordingReceiver();
        using var twoBinding = two.Bind(2, atTwo);
        two.SetPeerAddress(1, sending.LocalEndPoint.ToString());
        sending.SetPeerAddress(2, two.LocalEndPoint.ToString());

        var refused = Assert.Throws<ArgumentException>(() => sending.SendBatch([Heartbeat(2, 1), null!]));
        Assert.That(refused!.ParamName, Is.EqualTo("messages"));

        // Messages to one peer keep their order: had the batch's first message been queued, it
        // would arrive before this one.
        sending.Send(Heartbeat(2, 2));
        await atTwo.UntilReceived(1).WaitAsync(Waits.Limit);
        Assert.That(atTwo.ReceivedNow.Select(m => m.Term), Is.EqualTo(new ulong[] { 2 }));
    }

    [Test]
    public void ARunLongerThanTheRoomLeftInTheQueueKeepsItsFirstMessagesInOrder()
    {
        var queue = new TcpSendQueue(capacity: 4);
        Assert.That(queue.TryAdd(Heartbeat(2, 1)), Is.True);

        Message[] run = [Heartbeat(2, 2), Heartbeat(2, 3), Heartbeat(2, 4), Heartbeat(2, 5), Heartbeat(2, 6)];
        Assert.That(queue.TryAddRun(run), Is.EqualTo(3), "three places were left");
        Assert.That(queue.TryAddRun(run), Is.Zero, "a full queue takes none");

        var taken = new List<Message>();
        Assert.That(queue.TryTakeAll(ref taken), Is.True);
        Assert.That(taken.Select(m => m.Term), Is.EqualTo(new ulong[] { 1, 2, 3, 4 }));

        queue.Complete();
        Assert.That(queue.TryAddRun(run), Is.Zero, "a completed queue takes none");
    }

    [Test]
    public async Task AWaitingReaderIsWokenByARun()
    {
        var queue = new TcpSendQueue(capacity: 16);
        var waiting = queue.WaitToTakeAsync(Waits.Limit, TimeProvider.System, CancellationToken.None).AsTask();
        Assert.That(waiting.IsCompleted, Is.False, "nothing queued yet");

        Assert.That(queue.TryAddRun([Heartbeat(2, 1), Heartbeat(2, 2)]), Is.EqualTo(2));

        Assert.That(await waiting, Is.EqualTo(TcpSendQueue.WaitOutcome.Ready));
    }

    private static Message Heartbeat(ulong to, ulong term) => new() { Type = MessageType.Heartbeat, From = 1, To = to, Term = term };
}
