using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport;

namespace EmbeddedRaft.Consensus.Tests.Transport;

/// <summary>
/// <see cref="IRaftTransport.SendBatch"/>'s default, for a transport that implements only
/// <see cref="IRaftTransport.Send"/>: every message is handed to Send in order, a message that
/// fails does not keep the others from going out, and the failures are thrown together at the end.
/// </summary>
[TestFixture]
public class SendBatchDefaultTests
{
    [Test]
    public void EveryMessageIsSentInOrder()
    {
        var transport = new OneAtATimeTransport();

        ((IRaftTransport)transport).SendBatch([Heartbeat(2, 1), Heartbeat(3, 2), Heartbeat(2, 3)]);

        Assert.That(transport.Sent.Select(m => (m.To, m.Term)), Is.EqualTo(new[] { (2UL, 1UL), (3UL, 2UL), (2UL, 3UL) }));
    }

    [Test]
    public void AMessageThatFailsDoesNotStopTheOthersAndTheFailuresAreThrownTogether()
    {
        var transport = new OneAtATimeTransport { Refuses = 3 };

        var failed = Assert.Throws<AggregateException>(() => ((IRaftTransport)transport).SendBatch([Heartbeat(3, 1), Heartbeat(2, 2), Heartbeat(3, 3), Heartbeat(2, 4)]));

        Assert.That(transport.Sent.Select(m => m.Term), Is.EqualTo(new ulong[] { 2, 4 }), "the messages to the other peer all went out");
        Assert.That(failed!.InnerExceptions, Has.Count.EqualTo(2), "one exception per message not sent");
        Assert.That(failed.InnerExceptions, Is.All.InstanceOf<PeerUnreachableException>());
    }

    [Test]
    public void ANullIsRefusedBeforeAnyMessageIsSent()
    {
        var transport = new OneAtATimeTransport();

        var refused = Assert.Throws<ArgumentException>(() => ((IRaftTransport)transport).SendBatch([Heartbeat(2, 1), null!]));

        Assert.That(refused!.ParamName, Is.EqualTo("messages"));
        Assert.That(transport.Sent, Is.Empty);
    }

    private static Message Heartbeat(ulong to, ulong term) => new() { Type = MessageType.Heartbeat, From = 1, To = to, Term = term };

    /// <summary>A transport written for one message at a time: records what it sends, and throws for the peer it refuses.</summary>
    private sealed class OneAtATimeTransport : IRaftTransport
    {
        public List<Message> Sent { get; } = [];

        public ulong? Refuses { get; init; }

        public IDisposable Bind(ulong localId, IRaftMessageReceiver receiver) => throw new NotSupportedException();

        public void Send(Message message)
        {
            if (message.To == Refuses)
            {
                throw new PeerUnreachableException(message.To, "refused by the test transport");
            }

            Sent.Add(message);
        }

        public ValueTask SendSnapshotAsync(Message snapshotMessage, Stream data, CancellationToken cancellationToken) => throw new NotSupportedException();
    }
}
