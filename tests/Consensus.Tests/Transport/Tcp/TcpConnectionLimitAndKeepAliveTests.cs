using System.Net.Sockets;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Consensus.Transport.Tcp;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.Tcp;

namespace EmbeddedRaft.Consensus.Tests.Transport.Tcp;

/// <summary>
/// The inbound connection cap (excess connections closed at once and counted, peers unaffected)
/// and the keep-alives that let both ends of a message connection notice a dead peer or a
/// black-holed path, which TCP alone would not for minutes.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public class TcpConnectionLimitAndKeepAliveTests
{
    // Rounds of the black-hole test whose connection a stall ended before the hole opened, at most.
    private const int MaxBlackHoleRounds = 10;

    [Test]
    public async Task ConnectionsOverTheInboundLimitAreRefusedAndCountedWhileTheClusterKeepsCommitting()
    {
        var log = new SignalingLogger();

        // Node 1 takes at most 4 connections: its two peers' message connections and two more.
        // Handshakes may take 30 s, so the idle sockets below keep the two free places taken.
        await using var cluster = await TcpCluster.StartAsync(3, seed: 1441, configureTransport: (id, o) => id == 1
            ? o with { MaxInboundConnections = 4, HandshakeTimeout = TimeSpan.FromSeconds(30), Logger = log }
            : o);
        await cluster.ProposeAsync("before");
        var node1 = cluster.Transports[1];
        await Waits.UntilAsync(() => node1.InboundConnections == 2, "both peers connected to node 1");

        var limitLogged = log.NextAsync("InboundLimit");
        var sockets = new List<Socket>();
        var closedByNode = new List<Task>();
        for (int i = 0; i < 10; i++)
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            sockets.Add(socket);
            closedByNode.Add(ConnectAndReadToEndAsync(socket, node1.LocalEndPoint));
        }

        try
        {
            for (int closed = 0; closed < 8; closed++)
            {
                var done = await Task.WhenAny(closedByNode).WaitAsync(Waits.Limit);
                closedByNode.Remove(done);
            }

            await limitLogged;
            Assert.That(closedByNode.Count(t => t.IsCompleted), Is.Zero, "the two connections within the limit stay open (in their handshake)");
            Assert.That(node1.Metrics.ConnectionsRefused, Is.EqualTo(8), "every connection over the limit counted");
            Assert.That(log.Count("InboundLimit"), Is.EqualTo(1), "a run of refusals is logged once");

            for (int i = 0; i < 20; i++)
            {
                await cluster.ProposeAsync($"during {i}");
            }

            // Every proposal above returned once applied on the node that took it: wait until every
            // node applied as far as the furthest one.
            await cluster.WaitForAllAppliedAsync(cluster.Machines.Values.Max(m => m.AppliedIndex));
            Assert.That(cluster.Machines[1].Commands.Where(c => c.StartsWith("during", StringComparison.Ordinal)).Distinct().Count(), Is.EqualTo(20), "node 1 still hears its peers and applies");
        }
        finally
        {
            foreach (var socket in sockets)
            {
                socket.Dispose();
            }
        }

        await Waits.UntilAsync(() => node1.InboundConnections == 2, "the idle sockets' places freed when they close");
    }

    [Test]
    public async Task KeepAlivesNoticeABlackHoledPeerOnBothSidesAndTheConnectionComesBackAfterIt()
    {
        var sendingLog = new SignalingLogger();
        var receivingLog = new SignalingLogger();
        // Short keep-alives are what is tested; the handshake's bound is not, so it is long enough
        // for a loaded machine's stalls (a handshake that timed out dropped the queued message with
        // its connection, and the test waited for a message that was gone).
        var keepAlive = new TcpTransportOptions { KeepAliveInterval = TimeSpan.FromMilliseconds(50), KeepAliveTimeout = TimeSpan.FromMilliseconds(500), ReconnectMinDelay = TimeSpan.FromMilliseconds(20), ReconnectMaxDelay = TimeSpan.FromMilliseconds(200), HandshakeTimeout = TimeSpan.FromSeconds(3) };
        await using var receiving = new TcpTransport(keepAlive with { NodeId = 2, Logger = receivingLog });
        await using var proxy = new TcpFaultProxy(receiving.LocalEndPoint);
        var arrivals = new RecordingReceiver();
        using var receivingBinding = receiving.Bind(2, arrivals);
        await using var sending = new TcpTransport(keepAlive with { NodeId = 1, Logger = sendingLog });
        var sender = new RecordingReceiver();
        using var sendingBinding = sending.Bind(1, sender);
        receiving.SetPeerAddress(1, sending.LocalEndPoint.ToString());
        sending.SetPeerAddress(2, proxy.Address);

        // Sent again until it arrives: a stall longer than the keep-alive timeout (a loaded machine)
        // closes the connection, and a message queued at that moment is dropped with it (Raft resends).
        await Waits.UntilAsync(
            () =>
            {
                if (Count(arrivals) == 0)
                {
                    sending.Send(Heartbeat(1));
                }

                return Count(arrivals) >= 1;
            },
            "the message through the proxy");

        // The hole must open on a connection both ends still hold. On a loaded machine a stall longer
        // than the keep-alive timeout can end the connection just before: the sender is then
        // reconnecting when the hole opens, its handshakes fail, and no keep-alive is running to
        // time out. Such a round shows nothing either way; it is healed and played again. A round
        // on a held connection must end with a keep-alive timeout on each side, or the test fails.
        for (int round = 1; ; round++)
        {
            Assert.That(round, Is.LessThanOrEqualTo(MaxBlackHoleRounds), $"in {MaxBlackHoleRounds} rounds the connection never stayed up until the hole opened");
            var (outbound, inbound, held) = await BlackHoleAHeldConnectionAsync(sending, sendingLog, receivingLog, proxy);
            if (held)
            {
                // Each side's own silence timer ends it: the hole swallows the other side's close.
                await outbound.OrFailAsync("the sender's keep-alive timing out its black-holed connection to peer 2");
                await inbound.OrFailAsync("the receiver's keep-alive timing out its black-holed connection from peer 1");
                break;
            }

            TestContext.Out.WriteLine($"round {round}: the connection ended before the hole opened (a stall); healed, again");
            _ = Task.WhenAll(outbound, inbound).ContinueWith(t => t.Exception, TaskScheduler.Default);
            proxy.BlackHole(false);
        }

        await Waits.UntilAsync(() => Unreachable(sender).Contains(2UL), "the sender reports the silent peer unreachable");
        Assert.That(sending.Metrics.KeepAliveTimeouts, Is.GreaterThanOrEqualTo(1));
        Assert.That(receiving.Metrics.KeepAliveTimeouts, Is.GreaterThanOrEqualTo(1));

        proxy.BlackHole(false);
        await Waits.UntilAsync(
            () =>
            {
                sending.Send(Heartbeat(2));
                return arrivals.ReceivedNow.Any(m => m.Term == 2);
            },
            "messages flow again once the path heals");
    }

    [Test]
    public async Task AnIdleHealthyConnectionIsKeptOpenByItsKeepAlives()
    {
        // A timeout 15 intervals long: a loaded machine's scheduling stalls must not pass for a dead peer.
        var keepAlive = new TcpTransportOptions { KeepAliveInterval = TimeSpan.FromMilliseconds(100), KeepAliveTimeout = TimeSpan.FromMilliseconds(1500) };
        await using var receiving = new TcpTransport(keepAlive with { NodeId = 2 });
        var arrivals = new RecordingReceiver();
        using var binding = receiving.Bind(2, arrivals);
        await using var sending = new TcpTransport(keepAlive with { NodeId = 1 });
        receiving.SetPeerAddress(1, sending.LocalEndPoint.ToString());
        sending.SetPeerAddress(2, receiving.LocalEndPoint.ToString());

        sending.Send(Heartbeat(1));

        // 40 answers at a 100 ms interval span more than two keep-alive timeouts with no message
        // sent: without the keep-alives the receiving side would have closed the connection.
        await Waits.UntilAsync(() => sending.Metrics.KeepAliveAcks >= 40, "forty keep-alive answers");
        Assert.That(sending.Metrics.KeepAliveTimeouts + receiving.Metrics.KeepAliveTimeouts, Is.Zero);
        Assert.That(sending.Metrics.Connects, Is.EqualTo(1), "the one connection stayed up");
        Assert.That(Count(arrivals), Is.EqualTo(1));
    }

    /// <summary>
    /// Waits for three keep-alive answers on one connection of <paramref name="sending"/> through
    /// <paramref name="proxy"/>, then black-holes it. Returns the waits for each side's keep-alive
    /// timeout (the sender's "to peer 2", the receiver's "from peer 1"), and whether that connection
    /// was still held by both ends when the hole opened: no reconnect since the answers began, and
    /// no end of it logged on either side (each side logs the end before it closes, and a black hole
    /// swallows a close, so an end not logged by then is the hole's doing).
    /// </summary>
    private static async Task<(Task<RecordedLogEntry> Outbound, Task<RecordedLogEntry> Inbound, bool Held)> BlackHoleAHeldConnectionAsync(
        TcpTransport sending, SignalingLogger sendingLog, SignalingLogger receivingLog, TcpFaultProxy proxy)
    {
        long connects = -1;
        long acks = 0;
        int sentMark = 0;
        int receivedMark = 0;
        await Waits.UntilAsync(
            () =>
            {
                if (sending.Metrics.Connects != connects)
                {
                    // A new connection: count its answers, and watch both logs for its end, from here.
                    connects = sending.Metrics.Connects;
                    acks = sending.Metrics.KeepAliveAcks;
                    sentMark = sendingLog.Entries.Count;
                    receivedMark = receivingLog.Entries.Count;
                }

                return sending.Metrics.KeepAliveAcks >= acks + 3;
            },
            "three keep-alive answers on one connection through the proxy");

        var outbound = sendingLog.NextAsync("KeepAliveTimedOut", "to peer 2");
        var inbound = receivingLog.NextAsync("KeepAliveTimedOut", "from peer 1");
        proxy.BlackHole(true);
        bool held = sending.Metrics.Connects == connects
            && !sendingLog.Entries.Skip(sentMark).Any(e => e.EventId.Name is "KeepAliveTimedOut" or "SendPathDown" && e.Message.Contains("peer 2", StringComparison.Ordinal))
            && !receivingLog.Entries.Skip(receivedMark).Any(e => e.EventId.Name is "KeepAliveTimedOut" or "InboundEnded" && e.Message.Contains("from peer 1", StringComparison.Ordinal));
        return (outbound, inbound, held);
    }

    private static Message Heartbeat(ulong term) => new() { Type = MessageType.Heartbeat, From = 1, To = 2, Term = term };

    private static int Count(RecordingReceiver receiver) => receiver.ReceivedCount;

    private static ulong[] Unreachable(RecordingReceiver receiver) => receiver.UnreachableNow;

    /// <summary>Completes when the node closes <paramref name="socket"/> (end of stream or reset).</summary>
    // A connection the node refuses may be reset before the connect is even seen to complete (the
    // kernel finished the handshake, the node accepted and closed it at once): that is a refusal too.
    private static async Task ConnectAndReadToEndAsync(Socket socket, System.Net.EndPoint endPoint)
    {
        var buffer = new byte[64];
        try
        {
            await socket.ConnectAsync(endPoint);
            while (await socket.ReceiveAsync(buffer, SocketFlags.None) > 0)
            {
            }
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
    }
}
