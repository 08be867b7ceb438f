using System.Buffers;
using System.Buffers.Binary;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport.Tcp;

namespace EmbeddedRaft.Consensus.Tests.Transport.Tcp;

/// <summary>
/// Makes the bytes of one fuzzing connection: pure random bytes, a mutated handshake, or a good
/// handshake followed by one random or mutated frame (a message batch, a snapshot start, a
/// control frame, a bad length). Every connection must be one the node refuses or closes:
/// Raft trusts an authenticated peer (it is not Byzantine-tolerant), so a mutation that still
/// decodes into messages the node would take (<see cref="WouldDeliver"/>) is mutated again rather
/// than sent. The check mirrors the node's rules; the node is the one under test.
/// </summary>
public sealed class TcpFrameFuzzer(Random random, ulong target, ulong claimed, IReadOnlySet<ulong> knownPeers, int maxFrameBytes)
{
    private readonly byte[][] _validMessages = ValidMessages(target, claimed);

    public long Regenerated { get; private set; }

    public static IReadOnlyList<string> Kinds { get; } = ["random-bytes", "mutated-hello", "random-frame", "mutated-batch", "mutated-snapshot-start", "bad-length"];

    /// <summary>The bytes of the next connection and which kind of fuzz it is.</summary>
    public (byte[] Bytes, string Kind) Next()
    {
        while (true)
        {
            string kind = Kinds[random.Next(Kinds.Count)];
            byte[] bytes = kind switch
            {
                "random-bytes" => RandomBytes(random.Next(1, 128)),
                "mutated-hello" => Mutate(Hello(TcpConnectionKind.Messages)),
                "random-frame" => [.. Hello(TcpConnectionKind.Messages), .. RandomFrame()],
                "mutated-batch" => [.. Hello(TcpConnectionKind.Messages), .. Mutate(Batch())],
                "mutated-snapshot-start" => [.. Hello(TcpConnectionKind.Snapshot), .. Mutate(SnapshotStart())],
                _ => [.. Hello(TcpConnectionKind.Messages), .. BadLength()],
            };

            if (!WouldDeliver(bytes))
            {
                return (bytes, kind);
            }

            Regenerated++;
        }
    }

    /// <summary>True when the node would accept the handshake and hand a message (or a snapshot) to Raft.</summary>
    public bool WouldDeliver(byte[] bytes)
    {
        var buffer = new ReadOnlySequence<byte>(bytes);
        try
        {
            if (!TcpFrame.TryRead(buffer, maxFrameBytes, out var type, out var body, out var next) || type != TcpFrameType.Hello)
            {
                return false;
            }

            var hello = TcpFrame.ReadHello(body);
            if (hello.Version != TcpFrame.ProtocolVersion || hello.ClusterId != TcpCluster.ClusterId || hello.ReceiverId != target || !knownPeers.Contains(hello.SenderId)
                || hello.Kind is not (TcpConnectionKind.Messages or TcpConnectionKind.Snapshot))
            {
                return false;
            }

            buffer = buffer.Slice(next);
            while (TcpFrame.TryRead(buffer, maxFrameBytes, out type, out body, out next))
            {
                buffer = buffer.Slice(next);
                byte[] content = body.ToArray();
                if (hello.Kind == TcpConnectionKind.Snapshot)
                {
                    if (type != TcpFrameType.SnapshotMessage)
                    {
                        return false;
                    }

                    var start = MessageCodec.DecodeMessage(content);
                    return start.Type == MessageType.Snapshot && start.Snapshot is not null && start.From == hello.SenderId && start.To == target;
                }

                if (type != TcpFrameType.Messages || content.Length == 0)
                {
                    return false;
                }

                int offset = 0;
                while (offset < content.Length)
                {
                    int length = TcpFrame.ReadLength(content, ref offset);
                    if (length > content.Length - offset)
                    {
                        return false;
                    }

                    var message = MessageCodec.DecodeMessage(content.AsSpan(offset, length));
                    offset += length;
                    if (message.From != hello.SenderId || message.To != target || message.Type == MessageType.Snapshot)
                    {
                        return false;
                    }
                }

                return true;
            }

            return false;
        }
        catch (Exception e) when (e is MessageFormatException or TcpProtocolException)
        {
            return false;
        }
    }

    private static byte[][] ValidMessages(ulong to, ulong from)
    {
        Entry[] entries = [.. Enumerable.Range(1, 3).Select(i => new Entry(2, (ulong)(10 + i), EntryType.Normal, new byte[] { 1, 2, 3, (byte)i }))];
        Message[] messages =
        [
            new() { Type = MessageType.Append, From = from, To = to, Term = 2, LogTerm = 2, Index = 10, Commit = 9, Entries = entries },
            new() { Type = MessageType.Heartbeat, From = from, To = to, Term = 2, Commit = 9 },
            new() { Type = MessageType.AppendResponse, From = from, To = to, Term = 2, Index = 13 },
            new() { Type = MessageType.Vote, From = from, To = to, Term = 3, LogTerm = 2, Index = 13 },
            new() { Type = MessageType.ReadIndex, From = from, To = to, Term = 2, Context = new byte[] { 9, 9, 9, 9, 9, 9, 9, 9 } },
        ];
        return [.. messages.Select(MessageCodec.Encode)];
    }

    private byte[] Hello(TcpConnectionKind kind)
    {
        var writer = new ArrayBufferWriter<byte>();
        TcpFrame.WriteHello(writer, new TcpHello(TcpFrame.ProtocolVersion, kind, TcpCluster.ClusterId, claimed, target));
        return writer.WrittenSpan.ToArray();
    }

    private byte[] Batch()
    {
        var body = new List<byte>();
        int count = random.Next(1, 5);
        Span<byte> prefix = stackalloc byte[5];
        for (int i = 0; i < count; i++)
        {
            byte[] message = _validMessages[random.Next(_validMessages.Length)];
            int n = TcpFrame.WriteVarint(prefix, (uint)message.Length);
            body.AddRange(prefix[..n].ToArray());
            body.AddRange(message);
        }

        return Frame(TcpFrameType.Messages, [.. body]);
    }

    private byte[] SnapshotStart()
    {
        var message = new Message
        {
            Type = MessageType.Snapshot,
            From = claimed,
            To = target,
            Term = 2,
            Snapshot = new SnapshotMetadata(100, 2, new ConfState([1, 2, 3])),
        };
        return [.. Frame(TcpFrameType.SnapshotMessage, MessageCodec.Encode(message)), .. Frame(TcpFrameType.SnapshotChunk, RandomBytes(random.Next(1, 64)))];
    }

    private byte[] RandomFrame()
    {
        byte type = random.Next(4) == 0 ? (byte)random.Next(256) : (byte)random.Next(1, 9);
        return Frame((TcpFrameType)type, RandomBytes(random.Next(0, 96)));
    }

    private byte[] BadLength()
    {
        byte[] frame = Batch();
        uint length = random.Next(3) switch
        {
            0 => (uint)maxFrameBytes + 1 + (uint)random.Next(1000),
            1 => uint.MaxValue - (uint)random.Next(1000),
            _ => (uint)random.Next(0, frame.Length - TcpFrame.HeaderSizeBytes), // shorter than the messages: cuts one
        };
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(1), length);
        return frame;
    }

    private static byte[] Frame(TcpFrameType type, byte[] body)
    {
        var frame = new byte[TcpFrame.HeaderSizeBytes + body.Length];
        TcpFrame.WriteHeader(frame, type, body.Length);
        body.CopyTo(frame, TcpFrame.HeaderSizeBytes);
        return frame;
    }

    private byte[] Mutate(byte[] original)
    {
        var bytes = new List<byte>(original);
        int mutations = random.Next(1, 4);
        for (int m = 0; m < mutations && bytes.Count > 0; m++)
        {
            int at = random.Next(bytes.Count);
            switch (random.Next(6))
            {
                case 0:
                    bytes[at] ^= (byte)(1 << random.Next(8));
                    break;
                case 1:
                    bytes[at] = (byte)random.Next(256);
                    break;
                case 2:
                    bytes.RemoveRange(at, random.Next(1, Math.Min(8, bytes.Count - at) + 1));
                    break;
                case 3:
                    bytes.InsertRange(at, RandomBytes(random.Next(1, 8)));
                    break;
                case 4:
                    bytes[at] = random.Next(2) == 0 ? (byte)0xFF : (byte)0x00;
                    break;
                default:
                    int length = random.Next(1, Math.Min(16, bytes.Count - at) + 1);
                    bytes.InsertRange(at, bytes.GetRange(at, length));
                    break;
            }
        }

        return [.. bytes];
    }

    private byte[] RandomBytes(int count)
    {
        var bytes = new byte[count];
        random.NextBytes(bytes);
        return bytes;
    }
}
