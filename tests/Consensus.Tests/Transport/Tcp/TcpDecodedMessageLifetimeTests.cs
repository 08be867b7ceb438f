using System.Buffers;
using System.Runtime.InteropServices;
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
    public void ALargeFrameSplitAcrossSegmentsIsDecodedIntoSmallChunksThatOutliveItsBuffers()
    {
        const int seed = 1414;
        TestContext.Out.WriteLine($"seed {seed}");
        var random = new Random(seed);

        // RaftNode's shape under load: one append of ~100 entries of 1 KiB (a frame of its own,
        // over 64 KiB), then a heartbeat with a context, and one entry longer than a chunk.
        var entries = new Entry[100];
        for (int i = 0; i < entries.Length; i++)
        {
            var data = new byte[random.Next(900, 1100)];
            random.NextBytes(data);
            entries[i] = new Entry(9, 1000 + (ulong)i, EntryType.Normal, data);
        }

        var huge = new byte[FrameDecodeContext.FieldChunkBytes + 1];
        random.NextBytes(huge);
        var append = new Message { Type = MessageType.Append, From = 1, To = 2, Term = 9, LogTerm = 9, Index = 999, Commit = 998, Entries = entries };
        var heartbeat = new Message { Type = MessageType.Heartbeat, From = 1, To = 2, Term = 9, Commit = 998, Context = new byte[] { 4, 5, 6 } };
        var alone = new Message { Type = MessageType.Append, From = 1, To = 2, Term = 9, LogTerm = 9, Index = 1099, Commit = 998, Entries = new[] { new Entry(9, 1100, EntryType.Normal, huge) } };
        var (frame, _) = Frame(append, heartbeat, alone);
        Assert.That(frame, Has.Length.GreaterThan(FrameDecodeContext.FieldChunkBytes), "the frame takes the large path");

        // The body as the pipe holds it: segments cut at arbitrary points, reused after the read.
        var segments = Cut(frame, random);
        var context = new FrameDecodeContext();
        var batch = new List<Message>();

        int length = TcpInboundConnection.DecodeFrameBody(segments.Sequence, context, batch, 1, 2);
        foreach (var buffer in segments.Buffers)
        {
            Array.Fill(buffer, (byte)0xFF);
        }

        Assert.That(length, Is.EqualTo(frame.Length));
        Assert.That(batch, Has.Count.EqualTo(3));
        AssertSame(batch[0], append);
        AssertSame(batch[1], heartbeat);
        AssertSame(batch[2], alone);
        Assert.That(context.FrameCopies, Is.Zero, "no whole copy of a large frame");
        foreach (var entry in batch[0].Entries.Span)
        {
            Assert.That(MemoryMarshal.TryGetArray(entry.Data, out var array), Is.True);
            Assert.That(array.Array!, Has.Length.LessThanOrEqualTo(FrameDecodeContext.FieldChunkBytes), "entry data in small-object chunks, never a large-object array");
        }

        Assert.That(MemoryMarshal.TryGetArray(batch[2].Entries.Span[0].Data, out var own), Is.True);
        Assert.That(own.Array!, Has.Length.EqualTo(huge.Length), "a field longer than a chunk has an array of its own");

        // A small frame after it goes back to one shared copy of the frame.
        var (small, _) = Frame(heartbeat, heartbeat);
        int before = batch.Count;
        TcpInboundConnection.DecodeFrameBody(new ReadOnlySequence<byte>(small), context, batch, 1, 2);
        Array.Fill(small, (byte)0xFF);
        AssertSame(batch[before], heartbeat);
        AssertSame(batch[before + 1], heartbeat);
        Assert.That(context.FrameCopies, Is.EqualTo(1));

        // The large frame's messages still hold what was sent after all of that.
        AssertSame(batch[0], append);
        AssertSame(batch[2], alone);
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

    /// <summary><paramref name="bytes"/> as a sequence of segments copied out of it, cut at random points (1 B to 40 KiB apart).</summary>
    private static (ReadOnlySequence<byte> Sequence, List<byte[]> Buffers) Cut(byte[] bytes, Random random)
    {
        var buffers = new List<byte[]>();
        for (int at = 0; at < bytes.Length;)
        {
            int take = Math.Min(bytes.Length - at, random.Next(1, 40 * 1024));
            buffers.Add(bytes.AsSpan(at, take).ToArray());
            at += take;
        }

        var first = new Segment(buffers[0], 0);
        var last = first;
        foreach (var buffer in buffers.Skip(1))
        {
            last = last.Append(buffer);
        }

        return (new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length), buffers);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(byte[] buffer, long runningIndex)
        {
            Memory = buffer;
            RunningIndex = runningIndex;
        }

        public Segment Append(byte[] buffer)
        {
            var next = new Segment(buffer, RunningIndex + Memory.Length);
            Next = next;
            return next;
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
