using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport.Tcp;

namespace EmbeddedRaft.Benchmarks.Transport;

/// <summary>
/// <c>tcp-parts [--rounds 200] [--entries 128,1024]</c>: the TCP transport's per-message work taken
/// apart and timed on one thread, without sockets, threads or the thread pool: what <see cref="TcpTransportCpuProbe"/>
/// cannot separate. Per part, CPU ns per message (the calling thread's own CPU time, from the
/// scheduler, so other tenants of a loaded machine inflate it far less than wall time) and bytes
/// allocated per message, medians of the rounds:
/// <list type="bullet">
/// <item><c>queue</c>: the sending node's side, <see cref="TcpSendQueue.TryAdd"/> per message and one <see cref="TcpSendQueue.TryTakeAll"/> per round (no contention);</item>
/// <item><c>encode</c>: the pump's, each message's length, frames of at most 32 KiB written through <see cref="TcpPeerSender.WriteFrame"/> into a pipe flushed every 256 KiB (to <see cref="Stream.Null"/>);</item>
/// <item><c>decode</c>: the receiving side's, <see cref="TcpInboundConnection.DecodeFrame"/> over the same frames (each a single pipe segment, as on the wire);</item>
/// <item><c>floor</c>: what any decoder must make per message for a receiver that may keep it (the public
/// contract: a <see cref="Message"/> of its own, an entry slot never reused, the entry's bytes in memory
/// never reused), without parsing anything: each frame copied once as <c>decode</c> does, then per message
/// a slot from the same shared blocks and a <see cref="Message"/> made from known values. <c>decode</c>
/// minus <c>floor</c> is the parsing; <c>floor</c> is the cost of the objects and bytes themselves,
/// collections included (workstation GC: a gen0 collection runs on the allocating thread, on its CPU clock).</item>
/// </list>
/// The message is the one <see cref="TcpTransportThroughputBenchmarks"/> sends (one Append, one entry).
/// </summary>
internal static class TcpTransportPartsProbe
{
    private const int Messages = 20_000;
    private const int WarmupRounds = 100;

    public static int Run(string[] args)
    {
        int rounds = 200;
        int[] entries = [128, 1024];
        for (int i = 0; i < args.Length; i += 2)
        {
            string value = i + 1 < args.Length ? args[i + 1] : throw new CommandLineException($"{args[i]} needs a value.");
            switch (args[i])
            {
                case "--rounds":
                    rounds = CommandLine.Number<int>("--rounds", value);
                    break;
                case "--entries":
                    entries = CommandLine.Numbers<int>("--entries", value);
                    break;
                default:
                    throw new CommandLineException($"Unknown option '{args[i]}'.");
            }
        }

        Console.WriteLine(FormattableString.Invariant($"{Environment.ProcessorCount} processors, load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]}, {rounds} rounds of {Messages} messages per part ({WarmupRounds} warm-up rounds first)"));
        Console.WriteLine("| entry | part | CPU ns/msg (median) | CPU ns/msg (min) | allocated B/msg |");
        Console.WriteLine("|---|---|---:|---:|---:|");
        foreach (int entry in entries)
        {
            var message = TcpTransportThroughputBenchmarks.AppendMessage(entry);
            var frames = Frames(message);
            Report(entry, "queue", rounds, () => Queue(message));
            Report(entry, "encode", rounds, () => Encode(message));
            Report(entry, "decode", rounds, () => Decode(frames));
            Report(entry, "floor", rounds, () => Floor(frames, message));
        }

        return 0;
    }

    private static void Report(int entry, string part, int rounds, Action round)
    {
        for (int i = 0; i < WarmupRounds; i++)
        {
            round();
        }

        var cpu = new double[rounds];
        var allocated = new double[rounds];
        for (int i = 0; i < rounds; i++)
        {
            long bytesBefore = GC.GetAllocatedBytesForCurrentThread();
            long before = ThreadCpuNanoseconds();
            round();
            cpu[i] = (double)(ThreadCpuNanoseconds() - before) / Messages;
            allocated[i] = (double)(GC.GetAllocatedBytesForCurrentThread() - bytesBefore) / Messages;
        }

        Array.Sort(cpu);
        Array.Sort(allocated);
        Console.WriteLine(FormattableString.Invariant($"| {entry} B | {part} | {cpu[rounds / 2]:F1} | {cpu[0]:F1} | {allocated[rounds / 2]:F0} |"));
    }

    // One queue for every round, as a peer has: its lists reach their size in the warm-up.
    private static readonly TcpSendQueue SendQueue = new(2 * Messages);
    private static List<Message> taken = new(Messages);

    private static void Queue(Message message)
    {
        for (int i = 0; i < Messages; i++)
        {
            SendQueue.TryAdd(message);
        }

        SendQueue.TryTakeAll(ref taken);
        taken.Clear();
    }

    private static readonly PipeWriter NullWriter = PipeWriter.Create(Stream.Null, new StreamPipeWriterOptions(minimumBufferSize: 64 * 1024, leaveOpen: true));

    private static void Encode(Message message) => EncodeInto(NullWriter, message);

    // The pump's loop (TcpPeerSender.PumpAsync) without the queue and the socket.
    private static void EncodeInto(PipeWriter writer, Message message)
    {
        const int TargetBody = 32 * 1024;
        const int FlushBytes = 256 * 1024;
        var batch = new List<Message>(256);
        var lengths = new List<int>(256);
        int body = 0;
        long unflushed = 0;
        for (int i = 0; i < Messages; i++)
        {
            int length = MessageCodec.GetEncodedLength(message);
            int size = TcpFrame.VarintSize((uint)length) + length;
            if (body > 0 && body + size > TargetBody)
            {
                TcpPeerSender.WriteFrame(writer, batch, lengths, body);
                unflushed += TcpFrame.HeaderSizeBytes + body;
                batch.Clear();
                lengths.Clear();
                body = 0;
                if (unflushed >= FlushBytes)
                {
                    writer.FlushAsync().AsTask().GetAwaiter().GetResult();
                    unflushed = 0;
                }
            }

            batch.Add(message);
            lengths.Add(length);
            body += size;
        }

        TcpPeerSender.WriteFrame(writer, batch, lengths, body);
        writer.FlushAsync().AsTask().GetAwaiter().GetResult();
    }

    private static void Decode(List<byte[]> frames)
    {
        var decoding = new FrameDecodeContext();
        var batch = new List<Message>(256);
        int decoded = 0;
        foreach (var frame in frames)
        {
            decoding.BeginFrame();
            batch.Clear();
            TcpInboundConnection.DecodeFrame(frame, decoding, batch, peer: 1, local: 2);
            decoded += batch.Count;
        }

        if (decoded != Messages)
        {
            throw new InvalidOperationException($"{decoded} messages decoded of {Messages}.");
        }
    }

    private static void Floor(List<byte[]> frames, Message message)
    {
        var decoding = new FrameDecodeContext();
        var batch = new List<Message>(256);
        var entry = message.Entries.Span[0];
        int dataBytes = entry.Data.Length;
        int length = MessageCodec.GetEncodedLength(message);
        int stride = TcpFrame.VarintSize((uint)length) + length; // every message of these frames is the same
        int made = 0;
        foreach (var frame in frames)
        {
            decoding.BeginFrame();
            batch.Clear();
            var copy = decoding.FrameCopy(frame);
            for (int end = stride; end <= frame.Length; end += stride)
            {
                var slots = decoding.TakeEntries(1);
                slots.Span[0] = new Entry(entry.Term, entry.Index, entry.Type, copy.AsMemory(end - dataBytes, dataBytes));
                batch.Add(new Message
                {
                    Type = message.Type,
                    To = message.To,
                    From = message.From,
                    Term = message.Term,
                    LogTerm = message.LogTerm,
                    Index = message.Index,
                    Commit = message.Commit,
                    Entries = slots,
                });
            }

            made += batch.Count;
        }

        if (made != Messages)
        {
            throw new InvalidOperationException($"{made} messages made of {Messages}.");
        }
    }

    /// <summary>One round's frames as the pump writes them, each frame's body in an array of its own.</summary>
    private static List<byte[]> Frames(Message message)
    {
        var stream = new MemoryStream();
        EncodeInto(PipeWriter.Create(stream, new StreamPipeWriterOptions(minimumBufferSize: 64 * 1024, leaveOpen: true)), message);
        var bytes = new ReadOnlySequence<byte>(stream.ToArray());
        var frames = new List<byte[]>();
        while (TcpFrame.TryRead(bytes, int.MaxValue, out var type, out var body, out var next))
        {
            if (type != TcpFrameType.Messages)
            {
                throw new InvalidOperationException($"A {type} frame.");
            }

            frames.Add(body.ToArray());
            bytes = bytes.Slice(next);
        }

        return bytes.IsEmpty ? frames : throw new InvalidOperationException($"{bytes.Length} bytes left over.");
    }

    private static long ThreadCpuNanoseconds() => ThreadCpuClock.Nanoseconds();
}
