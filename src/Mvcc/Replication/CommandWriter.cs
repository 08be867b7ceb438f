using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>
/// Appends the primitives of the command encoding (docs/formats.md, "Replicated store commands"):
/// unsigned LEB128 varints, zigzag varints for signed numbers, and byte strings as a varint length
/// followed by the bytes. Not thread-safe; one per command.
/// </summary>
internal sealed class CommandWriter
{
    private readonly ArrayBufferWriter<byte> _buffer;

    public CommandWriter(CommandKind kind, int sizeHint = 64)
    {
        _buffer = new ArrayBufferWriter<byte>(Math.Max(16, sizeHint));
        WriteByte((byte)kind);
    }

    public void WriteByte(byte value)
    {
        _buffer.GetSpan(1)[0] = value;
        _buffer.Advance(1);
    }

    public void WriteBool(bool value) => WriteByte(value ? (byte)1 : (byte)0);

    public void WriteUInt64(ulong value)
    {
        var span = _buffer.GetSpan(10);
        int n = 0;
        while (value >= 0x80)
        {
            span[n++] = (byte)(value | 0x80);
            value >>= 7;
        }

        span[n++] = (byte)value;
        _buffer.Advance(n);
    }

    public void WriteInt64(long value) => WriteUInt64((ulong)((value << 1) ^ (value >> 63)));

    public void WriteBytes(ReadOnlySpan<byte> value)
    {
        WriteUInt64((ulong)value.Length);
        value.CopyTo(_buffer.GetSpan(value.Length));
        _buffer.Advance(value.Length);
    }

    public void WriteString(string value) => WriteBytes(Encoding.UTF8.GetBytes(value));

    public void WriteFixed64(ulong value)
    {
        BinaryPrimitives.WriteUInt64BigEndian(_buffer.GetSpan(8), value);
        _buffer.Advance(8);
    }

    /// <summary>The command's bytes so far.</summary>
    public ReadOnlyMemory<byte> Written => _buffer.WrittenMemory;
}
