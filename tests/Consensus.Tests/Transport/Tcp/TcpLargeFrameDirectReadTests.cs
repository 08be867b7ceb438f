using System.Runtime.InteropServices;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport.Tcp;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Transport.Tcp;

/// <summary>
/// A large message frame (an append of about 100 KB, as RaftNode sends at 1,024 in flight) that a
/// read leaves partial is read from the socket straight into an array of its own, which its
/// messages keep: it arrives whole and in order with the frames around it, however the writes cut
/// it; its messages' data stays as sent after later frames; a large frame that stalls or is cut by
/// the connection closing loses only itself and closes only its connection (the frames before it
/// arrive). The frames are written by hand (<see cref="RawTcpPeer"/>), so where the writes cut a
/// frame is the test's choice.
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public class TcpLargeFrameDirectReadTests
{
    private const int Seed = 1414;

    [Test]
    public async Task ALargeFrameArrivesWholeInOrderAndItsMessagesKeepTheArrayItWasReadInto()
    {
        TestContext.Out.WriteLine($"seed {Seed}");
        var random = new Random(Seed);
        var receiver = new RecordingReceiver();
        await using var node = await NodeWithPeerAsync(receiver, frameTimeout: TimeSpan.FromSeconds(30));
        var small = new[] { Append(random, index: 1, entries: 1, entryBytes: 40) };
        var large = new[] { Append(random, index: 2, entries: 100, entryBytes: 1024), Heartbeat(commit: 101) };
        var after = new[] { Append(random, index: 102, entries: 2, entryBytes: 300) };
        var secondLarge = new[] { Append(random, index: 104, entries: 90, entryBytes: 1200) };
        byte[] firstWrite = [.. RawTcpPeer.Frames(small), .. RawTcpPeer.Frames(large), .. RawTcpPeer.Frames(after)];
        int largeBody = RawTcpPeer.Frames(large).Length - TcpFrame.HeaderSizeBytes;
        Assert.That(largeBody, Is.InRange(TcpConnection.DirectReadMinBodyBytes, TcpConnection.DirectReadMaxBodyBytes));

        await using (var peer = await RawTcpPeer.ConnectAsync(node.LocalEndPoint))
        {
            // Cut inside the large frame's header, inside its body, and after it: whichever way the
            // reads fall, more than the pipe's 64 KiB reads can hold is still to come after its header.
            int[] cuts = [RawTcpPeer.Frames(small).Length + 2, firstWrite.Length / 2, firstWrite.Length];
            int at = 0;
            foreach (int cut in cuts)
            {
                await peer.SendAsync(firstWrite[at..cut]);
                at = cut;
            }

            await receiver.UntilReceived(4).WaitAsync(Waits.Limit);
            await peer.SendAsync(RawTcpPeer.Frames(secondLarge));
            await receiver.UntilReceived(5).WaitAsync(Waits.Limit);
        }

        Message[] expected = [.. small, .. large, .. after, .. secondLarge];
        AssertSameSequence(receiver.ReceivedNow, expected);
        Assert.That(node.Metrics.FramesReadDirectly, Is.EqualTo(2), "both large frames read straight into their own arrays");

        // The first large frame's entries all alias one array, exactly its body: no copy of its own per entry.
        var entries = receiver.ReceivedNow[1].Entries.Span;
        Assert.That(MemoryMarshal.TryGetArray(entries[0].Data, out var first), Is.True);
        Assert.That(first.Array!.Length, Is.EqualTo(largeBody));
        foreach (var entry in entries)
        {
            Assert.That(MemoryMarshal.TryGetArray(entry.Data, out var segment) && ReferenceEquals(segment.Array, first.Array), Is.True, $"entry {entry.Index} shares the frame's array");
        }
    }

    [Test]
    public async Task ALargeFrameThatStallsClosesOnlyItsConnectionAndTheFramesBeforeItArrive()
    {
        var random = new Random(Seed + 1);
        var receiver = new RecordingReceiver();
        await using var node = await NodeWithPeerAsync(receiver, frameTimeout: TimeSpan.FromMilliseconds(300));
        var good = new[] { Append(random, index: 1, entries: 3, entryBytes: 100), Heartbeat(commit: 3) };
        var large = RawTcpPeer.Frames([Append(random, index: 4, entries: 100, entryBytes: 1024)]);

        await using (var peer = await RawTcpPeer.ConnectAsync(node.LocalEndPoint))
        {
            await peer.SendAsync([.. RawTcpPeer.Frames(good), .. large.AsSpan(0, large.Length / 2)]);
            Assert.That(await peer.ReceiveAsync(1), Is.Null, "the node closed the connection when the rest of the frame did not come");
        }

        await Waits.UntilAsync(() => node.Metrics.FrameErrors == 1, "the stalled frame counted as a frame error");
        AssertSameSequence(receiver.ReceivedNow, good);

        // The node takes a new connection from the same peer as before.
        var next = new[] { Append(random, index: 4, entries: 100, entryBytes: 1024) };
        await using (var peer = await RawTcpPeer.ConnectAsync(node.LocalEndPoint))
        {
            await peer.SendAsync(RawTcpPeer.Frames(next));
            await receiver.UntilReceived(3).WaitAsync(Waits.Limit);
        }

        AssertSameSequence(receiver.ReceivedNow, [.. good, .. next]);
    }

    [Test]
    public async Task ALargeFrameCutByTheConnectionClosingDeliversNothingOfItself()
    {
        var random = new Random(Seed + 2);
        var receiver = new RecordingReceiver();
        await using var node = await NodeWithPeerAsync(receiver, frameTimeout: TimeSpan.FromSeconds(30));
        var good = new[] { Heartbeat(commit: 0), Append(random, index: 1, entries: 2, entryBytes: 10) };
        var large = RawTcpPeer.Frames([Append(random, index: 3, entries: 100, entryBytes: 1024)]);

        await using (var peer = await RawTcpPeer.ConnectAsync(node.LocalEndPoint))
        {
            await peer.SendAsync([.. RawTcpPeer.Frames(good), .. large.AsSpan(0, large.Length - 1)]);
        }

        await Waits.UntilAsync(() => node.Metrics.FrameErrors == 1, "the cut frame counted as a frame error");
        AssertSameSequence(receiver.ReceivedNow, good);
    }

    private static async Task<TcpTransport> NodeWithPeerAsync(RecordingReceiver receiver, TimeSpan frameTimeout)
    {
        // Node 2 knows peer 1 (at an address nobody listens on: only the inbound side is used).
        var node = new TcpTransport(new TcpTransportOptions
        {
            NodeId = 2,
            Peers = new Dictionary<ulong, string> { [1] = "127.0.0.1:9" },
            ReconnectMinDelay = TimeSpan.FromSeconds(1),
            FrameTimeout = frameTimeout,
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

    private static Message Append(Random random, ulong index, int entries, int entryBytes)
    {
        var list = new Entry[entries];
        for (int e = 0; e < entries; e++)
        {
            var data = new byte[entryBytes];
            random.NextBytes(data);
            list[e] = new Entry(3, index + (ulong)e, EntryType.Normal, data);
        }

        return new Message { Type = MessageType.Append, From = 1, To = 2, Term = 3, LogTerm = 3, Index = index - 1, Commit = index - 1, Entries = list };
    }

    private static Message Heartbeat(ulong commit) => new() { Type = MessageType.Heartbeat, From = 1, To = 2, Term = 3, Commit = commit };

    private static void AssertSameSequence(IReadOnlyList<Message> got, IReadOnlyList<Message> expected)
    {
        Assert.That(got, Has.Count.EqualTo(expected.Count));
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.That((got[i].Type, got[i].Index, got[i].Commit), Is.EqualTo((expected[i].Type, expected[i].Index, expected[i].Commit)), $"message {i}");
            Assert.That(got[i].Entries.ToArray(), Is.EqualTo(expected[i].Entries.ToArray()), $"entries of message {i}");
        }
    }
}
