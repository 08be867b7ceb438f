using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace EmbeddedRaft.Consensus.Transport.Tcp;

/// <summary>
/// The transport's frames: a 5-byte header (type byte, body length as a little-endian uint32) and
/// the body. Layouts in docs/formats.md ("TCP transport frames"). Parsing treats input as
/// untrusted and throws only <see cref="TcpProtocolException"/>.
/// </summary>
internal static class TcpFrame
{
    public const int HeaderSizeBytes = 5;

    /// <summary>"ERTP" in ASCII: the first bytes of every hello.</summary>
    public static ReadOnlySpan<byte> Magic => "ERTP"u8;

    /// <summary>Version 2 added the keep-alive frames (a version 1 peer would close the connection on them, so versions do not mix).</summary>
    public const byte ProtocolVersion = 2;

    public const int HelloBodySizeBytes = 4 + 1 + 1 + 8 + 8 + 8;

    public const int MaxReasonBytes = 1024;

    public static void WriteHeader(Span<byte> destination, TcpFrameType type, int bodyLength)
    {
        destination[0] = (byte)type;
        BinaryPrimitives.WriteUInt32LittleEndian(destination[1..], (uint)bodyLength);
    }

    /// <summary>
    /// Takes one whole frame from the start of <paramref name="buffer"/>: false when the frame is not
    /// complete yet. Throws when the header is impossible (unknown type, body over <paramref name="maxBodyBytes"/>),
    /// so a peer cannot make this side buffer more than one maximum frame.
    /// </summary>
    public static bool TryRead(ReadOnlySequence<byte> buffer, int maxBodyBytes, out TcpFrameType type, out ReadOnlySequence<byte> body, out SequencePosition next)
    {
        type = default;
        body = default;
        next = buffer.Start;
        if (buffer.Length < HeaderSizeBytes)
        {
            if (!buffer.IsEmpty)
            {
                CheckType(buffer.FirstSpan[0]);
            }

            return false;
        }

        Span<byte> header = stackalloc byte[HeaderSizeBytes];
        buffer.Slice(0, HeaderSizeBytes).CopyTo(header);
        type = CheckType(header[0]);
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(header[1..]);
        if (length > (uint)maxBodyBytes)
        {
            throw new TcpProtocolException($"a {type} frame of {length} bytes is over the maximum frame size of {maxBodyBytes} bytes", "oversize");
        }

        if (buffer.Length - HeaderSizeBytes < length)
        {
            return false;
        }

        body = buffer.Slice(HeaderSizeBytes, length);
        next = body.End;
        return true;
    }

    public static void WriteHello(IBufferWriter<byte> writer, in TcpHello hello)
    {
        Span<byte> frame = writer.GetSpan(HeaderSizeBytes + HelloBodySizeBytes);
        WriteHeader(frame, TcpFrameType.Hello, HelloBodySizeBytes);
        Span<byte> body = frame[HeaderSizeBytes..];
        Magic.CopyTo(body);
        body[4] = hello.Version;
        body[5] = (byte)hello.Kind;
        BinaryPrimitives.WriteUInt64LittleEndian(body[6..], hello.ClusterId);
        BinaryPrimitives.WriteUInt64LittleEndian(body[14..], hello.SenderId);
        BinaryPrimitives.WriteUInt64LittleEndian(body[22..], hello.ReceiverId);
        writer.Advance(HeaderSizeBytes + HelloBodySizeBytes);
    }

    public static TcpHello ReadHello(ReadOnlySequence<byte> body)
    {
        if (body.Length != HelloBodySizeBytes)
        {
            throw new TcpProtocolException($"a hello of {body.Length} bytes; it has {HelloBodySizeBytes}", "malformed");
        }

        Span<byte> bytes = stackalloc byte[HelloBodySizeBytes];
        body.CopyTo(bytes);
        if (!bytes[..4].SequenceEqual(Magic))
        {
            throw new TcpProtocolException("a hello without the protocol's magic bytes (not an EmbeddedRaft peer)", "malformed");
        }

        return new TcpHello(
            bytes[4],
            (TcpConnectionKind)bytes[5],
            BinaryPrimitives.ReadUInt64LittleEndian(bytes[6..]),
            BinaryPrimitives.ReadUInt64LittleEndian(bytes[14..]),
            BinaryPrimitives.ReadUInt64LittleEndian(bytes[22..]));
    }

    /// <summary>Writes an empty frame, or one whose body is a status byte (when given) and a UTF-8 reason cut to <see cref="MaxReasonBytes"/>.</summary>
    public static void WriteControl(IBufferWriter<byte> writer, TcpFrameType type, byte? status = null, string? reason = null)
    {
        byte[] text = reason is null ? [] : Encoding.UTF8.GetBytes(reason);
        int textLength = Math.Min(text.Length, MaxReasonBytes);
        int bodyLength = (status is null ? 0 : 1) + textLength;
        Span<byte> frame = writer.GetSpan(HeaderSizeBytes + bodyLength);
        WriteHeader(frame, type, bodyLength);
        int at = HeaderSizeBytes;
        if (status is byte s)
        {
            frame[at++] = s;
        }

        text.AsSpan(0, textLength).CopyTo(frame[at..]);
        writer.Advance(HeaderSizeBytes + bodyLength);
    }

    public static string ReadReason(ReadOnlySequence<byte> text)
    {
        if (text.Length > MaxReasonBytes)
        {
            throw new TcpProtocolException($"a reason of {text.Length} bytes; at most {MaxReasonBytes}", "malformed");
        }

        return Encoding.UTF8.GetString(text);
    }

    public static int VarintSize(uint value) => value < 0x80 ? 1 : value < 0x4000 ? 2 : value < 0x200000 ? 3 : value < 0x10000000 ? 4 : 5;

    public static int WriteVarint(Span<byte> destination, uint value)
    {
        int i = 0;
        while (value >= 0x80)
        {
            destination[i++] = (byte)(value | 0x80);
            value >>= 7;
        }

        destination[i++] = (byte)value;
        return i;
    }

    /// <summary>Reads a varint length (at most 5 bytes, fitting an int) at <paramref name="offset"/>, moving it past.</summary>
    public static int ReadLength(ReadOnlySpan<byte> source, ref int offset)
    {
        // Messages under 16 KiB (nearly all) have a one- or two-byte length: read without the loop.
        int at = offset;
        if ((uint)(at + 1) < (uint)source.Length)
        {
            uint b0 = source[at];
            if (b0 < 0x80)
            {
                offset = at + 1;
                return (int)b0;
            }

            uint b1 = source[at + 1];
            if (b1 < 0x80)
            {
                offset = at + 2;
                return (int)((b0 & 0x7F) | (b1 << 7));
            }
        }

        uint value = 0;
        for (int shift = 0; shift < 35; shift += 7)
        {
            if (offset >= source.Length)
            {
                throw new TcpProtocolException("a message length cut off at the end of its frame", "malformed");
            }

            byte b = source[offset++];
            value |= (uint)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                if (shift == 28 && b > 0x07)
                {
                    break;
                }

                return value > int.MaxValue ? throw new TcpProtocolException("a message length over 2 GiB", "malformed") : (int)value;
            }
        }

        throw new TcpProtocolException("a message length longer than 5 bytes", "malformed");
    }

    private static TcpFrameType CheckType(byte type) =>
        type is >= (byte)TcpFrameType.Hello and <= (byte)TcpFrameType.KeepAliveAck
            ? (TcpFrameType)type
            : throw new TcpProtocolException($"unknown frame type {type}", "malformed");
}
