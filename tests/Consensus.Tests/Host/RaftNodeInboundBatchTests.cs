using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using Microsoft.Extensions.Time.Testing;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>
/// A batch a transport hands to a node (<see cref="IRaftMessageReceiver.ReceiveBatch"/>, a TCP
/// frame's messages) is stepped in the batch's order, and a batch holding a null is refused on the
/// transport's thread without reaching (and stopping) the node. One thread, a manual clock.
/// </summary>
[TestFixture]
public sealed class RaftNodeInboundBatchTests
{
    [Test]
    public void ABatchIsSteppedInOrderSoItsSecondAppendBuildsOnItsFirst()
    {
        using var follower = Follower.Start(seed: 51);

        // Leader 2 at term 2: entries 1-2, then entry 3 after them. Stepped in this order the second
        // append matches the log the first one made; the other way round it would be refused.
        follower.Receiver.ReceiveBatch([
            Append(index: 0, logTerm: 0, entries: [1, 2]),
            Append(index: 2, logTerm: 2, entries: [3]),
        ]);
        follower.RunUntilIdle();

        var responses = follower.Transport.Sent.Where(m => m.Type == MessageType.AppendResponse && m.To == 2).ToList();
        Assert.That(responses.Where(m => m.Reject), Is.Empty, "neither append was refused");
        Assert.That(responses.Last().Index, Is.EqualTo(3), "the follower acknowledged all three entries (acks may be coalesced)");
        Assert.That(follower.Node.Status.PersistedIndex, Is.EqualTo(3));
        Assert.That(follower.Node.Status.LeaderId, Is.EqualTo(2));
    }

    [Test]
    public void ABatchHoldingANullIsRefusedAndTheNodeKeepsRunning()
    {
        using var follower = Follower.Start(seed: 52);

        Assert.Throws<ArgumentNullException>(() => follower.Receiver.ReceiveBatch([Append(index: 0, logTerm: 0, entries: [1]), null!]));
        follower.Receiver.ReceiveBatch([Append(index: 0, logTerm: 0, entries: [1]), Append(index: 1, logTerm: 2, entries: [2])]);
        follower.RunUntilIdle();

        Assert.That(follower.Node.Status.IsStopped, Is.False);
        Assert.That(follower.Node.Status.PersistedIndex, Is.EqualTo(2), "only the whole batch that came after was taken");
    }

    private static Message Append(ulong index, ulong logTerm, ulong[] entries) => new()
    {
        Type = MessageType.Append,
        From = 2,
        To = 1,
        Term = 2,
        Index = index,
        LogTerm = logTerm,
        Entries = entries.Select(i => new Entry(2, i, EntryType.Normal, new[] { (byte)i })).ToArray(),
    };

    /// <summary>Node 1 of three, on a deterministic scheduler, never campaigning within the test; its transport captures the receiver it binds.</summary>
    private sealed class Follower : IDisposable
    {
        private readonly DeterministicTaskScheduler _scheduler;

        private Follower(DeterministicTaskScheduler scheduler, RaftNode<long> node, CapturingTransport transport)
        {
            _scheduler = scheduler;
            Node = node;
            Transport = transport;
        }

        public RaftNode<long> Node { get; }

        public CapturingTransport Transport { get; }

        public IRaftMessageReceiver Receiver => Transport.Receiver!;

        public static Follower Start(int seed)
        {
            var scheduler = new DeterministicTaskScheduler();
            var time = new FakeTimeProvider();
            var transport = new CapturingTransport();
            var options = new RaftNodeOptions
            {
                NodeId = 1,
                InitialVoters = [1, 2, 3],
                DataDirectory = "/node1",
                FileSystem = new FaultInjectingFileSystem(seed),
                TimeProvider = time,
                Scheduler = scheduler,
                TickInterval = TimeSpan.FromMilliseconds(10),
                Raft = new RaftOptions { RandomSeed = (ulong)seed, ElectionTimeoutTicks = 1000 },
                Log = new DurableRaftLogOptions { Wal = new WalOptions { Threading = WalThreading.CallerThread } },
            };
            var start = scheduler.Run(() => RaftNode<long>.StartAsync(options, new RecordingStateMachine(), transport).AsTask());
            scheduler.RunUntilIdle();
            return new Follower(scheduler, start.Result, transport);
        }

        public void RunUntilIdle() => _scheduler.RunUntilIdle();

        public void Dispose()
        {
            var disposed = _scheduler.Run(() => Node.DisposeAsync().AsTask());
            _scheduler.RunUntilIdle();
            Assert.That(disposed.IsCompletedSuccessfully, Is.True);
        }
    }

    /// <summary>Keeps the receiver the node binds and the messages it sends; delivers nothing.</summary>
    private sealed class CapturingTransport : IRaftTransport
    {
        private readonly List<Message> _sent = [];

        public IRaftMessageReceiver? Receiver { get; private set; }

        public List<Message> Sent => [.. _sent];

        public IDisposable Bind(ulong localId, IRaftMessageReceiver receiver)
        {
            Receiver = receiver;
            return new Unbind(this);
        }

        public void Send(Message message) => _sent.Add(message);

        public ValueTask SendSnapshotAsync(Message snapshotMessage, Stream data, CancellationToken cancellationToken) =>
            throw new PeerUnreachableException(snapshotMessage.To, "the test transport sends no snapshots");

        private sealed class Unbind(CapturingTransport transport) : IDisposable
        {
            public void Dispose() => transport.Receiver = null;
        }
    }
}
