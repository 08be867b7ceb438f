using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.TestSupport;
using Microsoft.Extensions.Time.Testing;

namespace EmbeddedRaft.Consensus.Tests.Transport;

/// <summary>
/// The in-process network: delivery on perfect links, partitions and cuts, each per-link fault
/// (drop, duplicate, delay, reorder), unreachable reporting, binding rules, determinism for a seed.
/// </summary>
[TestFixture]
public sealed class InProcessNetworkTests
{
    private static Message Append(ulong from, ulong to, ulong index) =>
        new() { Type = MessageType.Append, From = from, To = to, Term = 1, Index = index };

    private static (InProcessNetwork Network, IRaftTransport[] Transports, RecordingReceiver[] Receivers) Cluster(
        int size, InProcessNetworkOptions? options = null)
    {
        var network = new InProcessNetwork(options);
        var transports = new IRaftTransport[size + 1];
        var receivers = new RecordingReceiver[size + 1];
        for (ulong id = 1; id <= (ulong)size; id++)
        {
            transports[id] = network.CreateTransport(id);
            receivers[id] = new RecordingReceiver();
            transports[id].Bind(id, receivers[id]);
        }

        return (network, transports, receivers);
    }

    [Test]
    public void APerfectLinkDeliversDuringSendInOrder()
    {
        var (network, transports, receivers) = Cluster(2);
        using var _ = network;

        for (ulong i = 1; i <= 5; i++)
        {
            transports[1].Send(Append(1, 2, i));
            Assert.That(receivers[2].Received, Has.Count.EqualTo((int)i), "delivered before Send returned");
        }

        Assert.That(receivers[2].Received.Select(m => m.Index), Is.EqualTo(new ulong[] { 1, 2, 3, 4, 5 }));
        Assert.That(network.DeliveredMessages, Is.EqualTo(5));
        Assert.That(network.DroppedMessages, Is.Zero);
    }

    [Test]
    public void AMessageToANodeThatIsNotBoundIsDroppedAndTheSenderToldItIsUnreachable()
    {
        var (network, transports, receivers) = Cluster(2);
        using var _ = network;

        transports[1].Send(Append(1, 3, 1));

        Assert.That(receivers[1].Unreachable, Is.EqualTo(new ulong[] { 3 }));
        Assert.That(network.DroppedMessages, Is.EqualTo(1));
        Assert.That(network.UnreachableReports, Is.EqualTo(1));
    }

    [Test]
    public void APartitionDropsMessagesBetweenGroupsOnlyUntilHealed()
    {
        var (network, transports, receivers) = Cluster(3);
        using var _ = network;

        network.Partition([1], [2, 3]);
        transports[1].Send(Append(1, 2, 1));
        transports[2].Send(Append(2, 1, 1));
        transports[2].Send(Append(2, 3, 1));

        Assert.That(receivers[2].Received, Is.Empty);
        Assert.That(receivers[1].Received, Is.Empty);
        Assert.That(receivers[3].Received, Has.Count.EqualTo(1), "inside a group the link is up");
        Assert.That(receivers[1].Unreachable, Is.EqualTo(new ulong[] { 2 }));
        Assert.That(receivers[2].Unreachable, Is.EqualTo(new ulong[] { 1 }));

        network.Heal();
        transports[1].Send(Append(1, 2, 2));
        Assert.That(receivers[2].Received.Select(m => m.Index), Is.EqualTo(new ulong[] { 2 }));
    }

    [Test]
    public void NodesLeftOutOfAPartitionFormAGroupOfTheirOwn()
    {
        var (network, transports, receivers) = Cluster(3);
        using var _ = network;

        network.Isolate(3);
        transports[1].Send(Append(1, 2, 1));
        transports[1].Send(Append(1, 3, 1));
        transports[3].Send(Append(3, 2, 1));

        Assert.That(receivers[2].Received.Select(m => m.From), Is.EqualTo(new ulong[] { 1 }));
        Assert.That(receivers[3].Received, Is.Empty);
        Assert.That(network.IsLinkUp(1, 2), Is.True);
        Assert.That(network.IsLinkUp(3, 1), Is.False);
    }

    [Test]
    public void ACutIsOneWay()
    {
        var (network, transports, receivers) = Cluster(2);
        using var _ = network;

        network.Cut(1, 2);
        transports[1].Send(Append(1, 2, 1));
        transports[2].Send(Append(2, 1, 1));

        Assert.That(receivers[2].Received, Is.Empty);
        Assert.That(receivers[1].Received, Has.Count.EqualTo(1));
    }

    [Test]
    public void PartitionRefusesANodeInTwoGroups()
    {
        using var network = new InProcessNetwork();
        var thrown = Assert.Throws<ArgumentException>(() => network.Partition([1, 2], [2, 3]));
        Assert.That(thrown!.Message, Does.Contain("Node 2"));
    }

    [Test]
    public void DropRateOneLosesEveryMessageSilently()
    {
        var (network, transports, receivers) = Cluster(2);
        using var _ = network;

        network.SetLinkFaults(1, 2, new LinkFaults { DropRate = 1 });
        for (ulong i = 0; i < 10; i++)
        {
            transports[1].Send(Append(1, 2, i));
        }

        transports[2].Send(Append(2, 1, 1));
        Assert.That(receivers[2].Received, Is.Empty);
        Assert.That(receivers[1].Received, Has.Count.EqualTo(1), "the reverse link has its own faults");
        Assert.That(receivers[1].Unreachable, Is.Empty, "loss is not unreachability");
        Assert.That(network.DroppedMessages, Is.EqualTo(10));
    }

    [Test]
    public void DropsFollowTheSeedAndTheSameSeedDropsTheSameMessages()
    {
        foreach (int seed in TestSeeds.Choose("NETWORK_SEED", "NETWORK_SOAK_SEEDS", 1, 5))
        {
            TestContext.Out.WriteLine($"seed {seed} (replay with NETWORK_SEED={seed})");
            ulong[] first = DeliveredIndexes(seed);
            ulong[] second = DeliveredIndexes(seed);
            Assert.That(second, Is.EqualTo(first), $"seed {seed}");
            Assert.That(first.Length, Is.InRange(1, 999), $"seed {seed}: a rate of one half drops some, not all");
        }

        static ulong[] DeliveredIndexes(int seed)
        {
            var (network, transports, receivers) = Cluster(2, new InProcessNetworkOptions { Seed = seed });
            using var _ = network;
            network.SetAllLinkFaults(new LinkFaults { DropRate = 0.5 });
            for (ulong i = 0; i < 1000; i++)
            {
                transports[1].Send(Append(1, 2, i));
            }

            Assert.That(network.DeliveredMessages + network.DroppedMessages, Is.EqualTo(1000));
            return receivers[2].Received.Select(m => m.Index).ToArray();
        }
    }

    [Test]
    public void DuplicateRateOneDeliversEveryMessageTwice()
    {
        var (network, transports, receivers) = Cluster(2);
        using var _ = network;

        network.SetLinkFaults(1, 2, new LinkFaults { DuplicateRate = 1 });
        transports[1].Send(Append(1, 2, 1));
        transports[1].Send(Append(1, 2, 2));

        Assert.That(receivers[2].Received.Select(m => m.Index), Is.EqualTo(new ulong[] { 1, 1, 2, 2 }));
        Assert.That(network.DuplicatedMessages, Is.EqualTo(2));
    }

    [Test]
    public void ADelayedMessageArrivesWhenTheClockReachesItsDeliveryTime()
    {
        var time = new FakeTimeProvider();
        var (network, transports, receivers) = Cluster(2, new InProcessNetworkOptions { TimeProvider = time });
        using var _ = network;

        network.SetLinkFaults(1, 2, new LinkFaults { Delay = TimeSpan.FromMilliseconds(5) });
        transports[1].Send(Append(1, 2, 1));
        time.Advance(TimeSpan.FromMilliseconds(2));
        transports[1].Send(Append(1, 2, 2));

        time.Advance(TimeSpan.FromMilliseconds(2));
        Assert.That(receivers[2].Received, Is.Empty, "4 ms: nothing due yet");
        Assert.That(network.InFlightMessages, Is.EqualTo(2));

        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.That(receivers[2].Received.Select(m => m.Index), Is.EqualTo(new ulong[] { 1 }), "5 ms: the first is due");

        time.Advance(TimeSpan.FromMilliseconds(2));
        Assert.That(receivers[2].Received.Select(m => m.Index), Is.EqualTo(new ulong[] { 1, 2 }));
        Assert.That(network.InFlightMessages, Is.Zero);
    }

    [Test]
    public void MessagesTheDelayTimerReleasesTogetherArriveAsOneBatchPerRunForTheSameNode()
    {
        var time = new FakeTimeProvider();
        using var network = new InProcessNetwork(new InProcessNetworkOptions { TimeProvider = time });
        var calls = new List<(ulong Node, ulong[] Indexes)>();
        var sender = network.CreateTransport(1);
        sender.Bind(1, new RecordingReceiver());
        network.CreateTransport(2).Bind(2, new BatchLog(2, calls));
        network.CreateTransport(3).Bind(3, new BatchLog(3, calls));
        network.SetAllLinkFaults(new LinkFaults { Delay = TimeSpan.FromMilliseconds(5) });

        sender.Send(Append(1, 2, 1));
        sender.Send(Append(1, 2, 2));
        sender.Send(Append(1, 3, 3));
        sender.Send(Append(1, 2, 4));
        time.Advance(TimeSpan.FromMilliseconds(5));

        // Due together, in send order: each run of messages for one node is one call.
        Assert.That(calls.Select(c => $"{c.Node}:[{string.Join(",", c.Indexes)}]"), Is.EqualTo(new[] { "2:[1,2]", "3:[3]", "2:[4]" }));
        Assert.That(network.DeliveredMessages, Is.EqualTo(4));
    }

    /// <summary>Appends each call it gets (a batch, or a single message) to a log shared by several nodes.</summary>
    private sealed class BatchLog(ulong node, List<(ulong Node, ulong[] Indexes)> calls) : IRaftMessageReceiver
    {
        public void Receive(Message message) => calls.Add((node, [message.Index]));

        public void ReceiveBatch(ReadOnlySpan<Message> messages)
        {
            var indexes = new ulong[messages.Length];
            for (int i = 0; i < messages.Length; i++)
            {
                indexes[i] = messages[i].Index;
            }

            calls.Add((node, indexes));
        }

        public ValueTask ReceiveSnapshotAsync(Message snapshotMessage, Stream data, CancellationToken cancellationToken) => throw new NotSupportedException();

        public void ReportUnreachable(ulong peerId)
        {
        }
    }

    [Test]
    public void ReorderedMessagesAreOvertakenButAllArriveAndTheOrderFollowsTheSeed()
    {
        foreach (int seed in TestSeeds.Choose("NETWORK_SEED", "NETWORK_SOAK_SEEDS", 1, 5))
        {
            TestContext.Out.WriteLine($"seed {seed} (replay with NETWORK_SEED={seed})");
            ulong[] first = Order(seed);
            Assert.That(first, Is.EquivalentTo(Enumerable.Range(0, 200).Select(i => (ulong)i)), $"seed {seed}: every message arrives once");
            Assert.That(first, Is.Not.Ordered, $"seed {seed}: some were overtaken");
            Assert.That(Order(seed), Is.EqualTo(first), $"seed {seed}: the same seed gives the same order");
        }

        static ulong[] Order(int seed)
        {
            var time = new FakeTimeProvider();
            var (network, transports, receivers) = Cluster(2, new InProcessNetworkOptions { TimeProvider = time, Seed = seed });
            using var _ = network;
            network.SetLinkFaults(1, 2, new LinkFaults { ReorderRate = 0.3, ReorderDelay = TimeSpan.FromMilliseconds(3) });
            for (ulong i = 0; i < 200; i++)
            {
                transports[1].Send(Append(1, 2, i));
                time.Advance(TimeSpan.FromMilliseconds(1));
            }

            time.Advance(TimeSpan.FromMilliseconds(10));
            return receivers[2].Received.Select(m => m.Index).ToArray();
        }
    }

    [Test]
    public void AMessageInFlightIsLostWhenItsLinkIsCutBeforeItArrives()
    {
        var time = new FakeTimeProvider();
        var (network, transports, receivers) = Cluster(2, new InProcessNetworkOptions { TimeProvider = time });
        using var _ = network;

        network.SetLinkFaults(1, 2, new LinkFaults { Delay = TimeSpan.FromMilliseconds(5) });
        transports[1].Send(Append(1, 2, 1));
        network.Isolate(2);
        time.Advance(TimeSpan.FromMilliseconds(5));

        Assert.That(receivers[2].Received, Is.Empty);
        Assert.That(network.DroppedMessages, Is.EqualTo(1));
    }

    [Test]
    public void AnUnboundNodeReceivesNothingAndCanBindAgain()
    {
        using var network = new InProcessNetwork();
        var sender = network.CreateTransport(1);
        var first = new RecordingReceiver();
        var binding = network.CreateTransport(2).Bind(2, first);
        sender.Send(Append(1, 2, 1));
        binding.Dispose();
        sender.Send(Append(1, 2, 2));

        var restarted = new RecordingReceiver();
        using var _ = network.CreateTransport(2).Bind(2, restarted);
        sender.Send(Append(1, 2, 3));

        Assert.That(first.Received.Select(m => m.Index), Is.EqualTo(new ulong[] { 1 }));
        Assert.That(restarted.Received.Select(m => m.Index), Is.EqualTo(new ulong[] { 3 }));
    }

    [Test]
    public void BindingTwiceOrForAnotherIdIsRefused()
    {
        using var network = new InProcessNetwork();
        var transport = network.CreateTransport(1);
        using var _ = transport.Bind(1, new RecordingReceiver());

        Assert.Throws<InvalidOperationException>(() => network.CreateTransport(1).Bind(1, new RecordingReceiver()));
        var wrongId = Assert.Throws<ArgumentException>(() => network.CreateTransport(2).Bind(3, new RecordingReceiver()));
        Assert.That(wrongId!.ParamName, Is.EqualTo("localId"));
    }

    [Test]
    public void AReceiverThatThrowsIsCountedAndDoesNotBreakTheSender()
    {
        var (network, transports, receivers) = Cluster(3);
        using var _ = network;
        receivers[2].ReceiveFailure = new InvalidOperationException("receiver bug");

        Assert.DoesNotThrow(() => transports[1].Send(Append(1, 2, 1)));
        transports[1].Send(Append(1, 3, 1));

        Assert.That(network.ReceiverFailures, Is.EqualTo(1));
        Assert.That(receivers[3].Received, Has.Count.EqualTo(1));
    }

    [Test]
    public void FaultsAndOptionsRefuseValuesOutOfRangeNamingTheProperty()
    {
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => _ = new LinkFaults { DropRate = 1.5 })!.ParamName, Is.EqualTo("DropRate"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => _ = new LinkFaults { DuplicateRate = -0.1 })!.ParamName, Is.EqualTo("DuplicateRate"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => _ = new LinkFaults { ReorderRate = double.NaN })!.ParamName, Is.EqualTo("ReorderRate"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => _ = new LinkFaults { Delay = TimeSpan.FromTicks(-1) })!.ParamName, Is.EqualTo("Delay"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => _ = new LinkFaults { ReorderDelay = TimeSpan.Zero })!.ParamName, Is.EqualTo("ReorderDelay"));
        var chunk = Assert.Throws<ArgumentOutOfRangeException>(() => _ = new InProcessNetworkOptions { SnapshotChunkSizeBytes = 0 })!;
        Assert.That(chunk.ParamName, Is.EqualTo("SnapshotChunkSizeBytes"));
        Assert.That(chunk.Message, Does.Contain("SnapshotChunkSizeBytes must be from 1 to 16777216"));
        Assert.That(Assert.Throws<ArgumentNullException>(() => _ = new InProcessNetworkOptions { TimeProvider = null! })!.ParamName, Is.EqualTo("TimeProvider"));
    }

    [Test]
    public void OptionsBindFromConfiguration()
    {
        var options = OptionsBinding.Bind<InProcessNetworkOptions>(new Dictionary<string, string?>
        {
            ["Seed"] = "42",
            ["SnapshotChunkSizeBytes"] = "4096",
        });

        Assert.That(options.Seed, Is.EqualTo(42));
        Assert.That(options.SnapshotChunkSizeBytes, Is.EqualTo(4096));
    }
}
