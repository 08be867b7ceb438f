using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Consensus.Transport.Tcp;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Transport.Tcp;

/// <summary>The options bind from configuration, refuse bad values naming the option, and the transport checks the rules between them.</summary>
[TestFixture]
public class TcpTransportOptionsTests
{
    [Test]
    public void OptionsBindFromConfigurationAsAHostedServiceBindsThem()
    {
        var options = OptionsBinding.Bind<TcpTransportOptions>(new Dictionary<string, string?>
        {
            ["NodeId"] = "1",
            ["ClusterId"] = "42",
            ["ListenAddress"] = "0.0.0.0:7001",
            ["Peers:2"] = "node2.example:7001",
            ["Peers:3"] = "10.0.0.3:7001",
            ["SendQueueCapacity"] = "128",
            ["FrameTimeout"] = "00:00:03",
        });

        Assert.That(options.NodeId, Is.EqualTo(1));
        Assert.That(options.ClusterId, Is.EqualTo(42));
        Assert.That(options.Peers, Is.EquivalentTo(new Dictionary<ulong, string> { [2] = "node2.example:7001", [3] = "10.0.0.3:7001" }));
        Assert.That(options.SendQueueCapacity, Is.EqualTo(128));
        Assert.That(options.FrameTimeout, Is.EqualTo(TimeSpan.FromSeconds(3)));
    }

    [TestCase("ListenAddress", "localhost:7001")]
    [TestCase("ListenAddress", "127.0.0.1")]
    [TestCase("MaxFrameSizeBytes", "100")]
    [TestCase("SendQueueCapacity", "0")]
    [TestCase("SnapshotChunkSizeBytes", "0")]
    [TestCase("ReconnectMinDelay", "00:00:00")]
    [TestCase("WriteTimeout", "-00:00:01")]
    [TestCase("ShutdownFlushTimeout", "-00:00:01")]
    [TestCase("MaxInboundConnections", "0")]
    [TestCase("MaxInboundConnections", "65537")]
    [TestCase("KeepAliveInterval", "00:00:00")]
    [TestCase("KeepAliveTimeout", "-00:00:01")]
    public void ABadValueFailsNamingTheOption(string option, string value)
    {
        var error = Assert.Catch(() => OptionsBinding.Bind<TcpTransportOptions>(new Dictionary<string, string?> { [option] = value }))!;

        Assert.That(OptionsBinding.Innermost(error), Is.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo(option));
    }

    [Test]
    public void APeerAddressThatIsNotHostAndPortIsRefused()
    {
        Assert.That(() => new TcpTransportOptions { Peers = new Dictionary<ulong, string> { [2] = "no-port" } },
            Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("Peers"));
    }

    [Test]
    public void TheTransportChecksTheRulesBetweenOptions()
    {
        Assert.That(() => new TcpTransport(new TcpTransportOptions()), Throws.ArgumentException.With.Message.Contains("NodeId"));
        Assert.That(() => new TcpTransport(new TcpTransportOptions { NodeId = 1, MaxFrameSizeBytes = 4096, SnapshotChunkSizeBytes = 8192 }),
            Throws.ArgumentException.With.Message.Contains("SnapshotChunkSizeBytes").And.Message.Contains("MaxFrameSizeBytes"));
        Assert.That(() => new TcpTransport(new TcpTransportOptions { NodeId = 1, ReconnectMinDelay = TimeSpan.FromSeconds(5), ReconnectMaxDelay = TimeSpan.FromSeconds(1) }),
            Throws.ArgumentException.With.Message.Contains("ReconnectMaxDelay"));
        Assert.That(() => new TcpTransport(new TcpTransportOptions { NodeId = 1, KeepAliveInterval = TimeSpan.FromSeconds(5), KeepAliveTimeout = TimeSpan.FromSeconds(5) }),
            Throws.ArgumentException.With.Message.Contains("KeepAliveTimeout").And.Message.Contains("KeepAliveInterval"));
        Assert.That(() => new TcpTransport(new TcpTransportOptions { NodeId = 1, Peers = new Dictionary<ulong, string> { [1] = "127.0.0.1:1" } }),
            Throws.ArgumentException.With.Message.Contains("own id"));
        Assert.That(() => new TcpTransport(new TcpTransportOptions { NodeId = 1, Tls = new TcpTransportTlsOptions() }),
            Throws.ArgumentException.With.Message.Contains("ServerCertificate"));
    }

    [Test]
    public async Task ASendToAPeerWithoutAnAddressIsDroppedAndReportedUnreachableWithoutBlocking()
    {
        await using var transport = new TcpTransport(new TcpTransportOptions { NodeId = 1 });
        var receiver = new RecordingReceiver();
        using var binding = transport.Bind(1, receiver);

        transport.Send(new Message { Type = MessageType.Heartbeat, From = 1, To = 9, Term = 1 });

        Assert.That(transport.Metrics.MessagesDropped, Is.EqualTo(1));
        Assert.That(receiver.Unreachable, Is.EqualTo(new ulong[] { 9 }));
        Assert.That(() => transport.Bind(1, new RecordingReceiver()), Throws.InvalidOperationException, "one receiver at a time");
        Assert.That(() => transport.Bind(2, new RecordingReceiver()), Throws.ArgumentException, "only this transport's node id");
        Assert.That(async () => await transport.SendSnapshotAsync(new Message { Type = MessageType.Snapshot, From = 1, To = 9, Snapshot = new SnapshotMetadata(5, 1, new ConfState([1, 9])) }, new MemoryStream(), CancellationToken.None),
            Throws.TypeOf<PeerUnreachableException>().With.Property("PeerId").EqualTo(9));
    }

    [Test]
    public async Task AFullPeerQueueDropsAndCountsInsteadOfBlocking()
    {
        // A peer address nobody listens on: the sender never connects, so the queue only fills.
        await using var transport = new TcpTransport(new TcpTransportOptions
        {
            NodeId = 1,
            SendQueueCapacity = 10,
            ReconnectMinDelay = TimeSpan.FromSeconds(30),
            ReconnectMaxDelay = TimeSpan.FromSeconds(30),
            Peers = new Dictionary<ulong, string> { [2] = "127.0.0.1:1" },
        });

        for (int i = 0; i < 1000; i++)
        {
            transport.Send(new Message { Type = MessageType.Heartbeat, From = 1, To = 2, Term = 1 });
        }

        Assert.That(transport.Metrics.MessagesDropped, Is.GreaterThanOrEqualTo(1000 - 10), "at most the queue's capacity waits; the rest is dropped and counted");
    }
}
