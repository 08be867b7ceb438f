using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Consensus.Transport.Tcp;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Transport.Tcp;

/// <summary>
/// The receiving side decodes a frame's messages into one shared copy of the frame (not one copy
/// per message) and never into the pipe's reused buffers: a message held past any later read still
/// has exactly the bytes that were sent.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public class TcpDecodedMessageLifetimeTests
{
    [Test]
    public void MessagesOfOneFrameShareOneCopyThatOutlivesTheFrameBuffer()
    {
        var heartbeat = new Message { Type = MessageType.Heartbeat, From = 1, To = 2, Term = 7, Commit = 40, Context = new byte[] { 9, 8, 7 } };
        var append = new Message
        {
            Type = MessageType.Append, From = 1, To = 2, Term = 7, LogTerm = 7, Index = 41, Commit = 40,
            Entries = new[] { new Entry(7, 42, EntryType.Normal, new byte[] { 1, 2, 3, 4 }), new Entry(7, 43, EntryType.Normal, new byte[300]) },
        };
        var response = new Message { Type = MessageType.AppendResponse, From = 1, To = 2, Term = 7, Index = 43 };
        var (frame, spans) = Frame(heartbeat, append, response);
        var context = new FrameDecodeContext();

        context.BeginFrame();
        var decoded = spans.Select(s => MessageCodec.DecodeMessage(frame, s.Offset, s.Length, context)).ToList();
        Array.Fill(frame, (byte)0xFF); // what the pipe does to its buffer after the next read

        AssertSame(decoded[0], heartbeat);
        AssertSame(decoded[1], append);
        AssertSame(decoded[2], response);
        Assert.That(context.FrameCopies, Is.EqualTo(1), "one copy for the whole frame");

        var (quiet, quietSpans) = Frame(response, response);
        context.BeginFrame();
        foreach (var (offset, length) in quietSpans)
        {
            AssertSame(MessageCodec.DecodeMessage(quiet, offset, length, context), response);
        }

        Assert.That(context.FrameCopies, Is.EqualTo(1), "a frame of messages without bytes is not copied at all");
    }

    [Test]
    public void ABadMessageInAFrameReportsItsOffsetWithinTheMessage()
    {
        var (frame, spans) = Frame(new Message { Type = MessageType.Heartbeat, From = 1, To = 2, Term = 1 }, new Message { Type = MessageType.Heartbeat, From = 1, To = 2, Term = 2 });
        frame[spans[1].Offset] = 200; // an unknown version byte

        var bad = Assert.Throws<MessageFormatException>(() => MessageCodec.DecodeMessage(frame, spans[1].Offset, spans[1].Length, new FrameDecodeContext()));
        Assert.That(bad!.Offset, Is.EqualTo(1), "offset within the message, as DecodeMessage(span) reports it");
    }

    [Test]
    public async Task MessagesHeldAcrossManyFramesStillHaveTheBytesThatWereSent()
    {
        foreach (int seed in TestSeeds.Choose("TCP_LIFETIME_SEED", "TCP_LIFETIME_SOAK_SEEDS", first: 1401, defaultCount: 1))
        {
            await HoldEveryMessageAndCompareAsync(seed);
        }
    }

    private static async Task HoldEveryMessageAndCompareAsync(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}");
        var random = new Random(seed);
        await using var receiving = new TcpTransport(new TcpTransportOptions { NodeId = 2 });
        var holder = new RecordingReceiver();
        using var binding = receiving.Bind(2, holder);
        await using var sending = new TcpTransport(new TcpTransportOptions { NodeId = 1, SendQueueCapacity = 4000 });
        receiving.SetPeerAddress(1, sending.LocalEndPoint.ToString());
        sending.SetPeerAddress(2, receiving.LocalEndPoint.ToString());

        // Small and 1 KiB entries share 32 KiB frames; every 500th message carries 100 KB, a frame
        // of its own that spans the receiving pipe's 64 KiB segments.
        var sent = new List<Message>();
        for (int i = 0; i < 3000; i++)
        {
            int entries = random.Next(0, 4);
            var list = new Entry[entries];
            for (int e = 0; e < entries; e++)
            {
                var data = new byte[i % 500 == 499 && e == 0 ? 100_000 : random.Next(0, 2) == 0 ? random.Next(0, 200) : 1024];
                random.NextBytes(data);
                list[e] = new Entry(5, (ulong)(i * 4) + (ulong)e + 1, EntryType.Normal, data);
            }

            var context = new byte[random.Next(0, 3) * 8];
            random.NextBytes(context);
            sent.Add(new Message { Type = entries > 0 ? MessageType.Append : MessageType.Heartbeat, From = 1, To = 2, Term = 5, Index = (ulong)i, Entries = list, Context = context });
        }

        foreach (var message in sent)
        {
            sending.Send(message);
        }

        await holder.UntilReceived(3000).WaitAsync(Waits.Limit);
        Assert.That(sending.Metrics.MessagesDropped, Is.Zero);
        var received = holder.ReceivedNow;
        Assert.That(received, Has.Count.EqualTo(sent.Count));
        for (int i = 0; i < sent.Count; i++)
        {
            AssertSame(received[i], sent[i]);
        }

    }

    private static (byte[] Frame, List<(int Offset, int Length)> Spans) Frame(params Message[] messages)
    {
        var frame = new List<byte>();
        var spans = new List<(int, int)>();
        foreach (var message in messages)
        {
            var encoded = MessageCodec.Encode(message);
            var prefix = new byte[5];
            int prefixLength = TcpFrame.WriteVarint(prefix, (uint)encoded.Length);
            frame.AddRange(prefix.AsSpan(0, prefixLength).ToArray());
            spans.Add((frame.Count, encoded.Length));
            frame.AddRange(encoded);
        }

        return ([.. frame], spans);
    }

    private static void AssertSame(Message actual, Message expected)
    {
        Assert.That(
            (actual.Type, actual.From, actual.To, actual.Term, actual.LogTerm, actual.Index, actual.Commit, actual.Reject, actual.RejectHint),
            Is.EqualTo((expected.Type, expected.From, expected.To, expected.Term, expected.LogTerm, expected.Index, expected.Commit, expected.Reject, expected.RejectHint)));
        Assert.That(actual.Context.ToArray(), Is.EqualTo(expected.Context.ToArray()), $"context of {expected}");
        Assert.That(actual.Entries.Length, Is.EqualTo(expected.Entries.Length), $"entries of {expected}");
        for (int i = 0; i < expected.Entries.Length; i++)
        {
            var (a, e) = (actual.Entries.Span[i], expected.Entries.Span[i]);
            Assert.That((a.Term, a.Index, a.Type), Is.EqualTo((e.Term, e.Index, e.Type)));
            Assert.That(a.Data.Span.SequenceEqual(e.Data.Span), Is.True, $"entry {e.Index}'s {e.Data.Length} bytes");
        }
    }
}
