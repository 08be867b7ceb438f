using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>
/// Appends the primitives of the command encoding (docs/formats.md, "Replicated store commands"):
/// unsigned LEB128 varints, zigzag varints for signed numbers, and byte strings as a varint length
/// followed by the bytes. Not thread-safe; one per command, or this thread's reused one
/// (<see cref="Reused"/>) for a command whose bytes are copied before the thread writes another.
/// </summary>
internal sealed class CommandWriter
{
    /// <summary>The most a thread's reused writer keeps between commands; a larger command gets a writer of its own.</summary>
    internal const int MaxReusedBytes = 64 * 1024;

    [ThreadStatic]
    private static CommandWriter? t_reused;

    private readonly ArrayBufferWriter<byte> _buffer;

    public CommandWriter(CommandKind kind, int sizeHint = 64)
    {
        _buffer = new ArrayBufferWriter<byte>(Math.Max(16, sizeHint));
        WriteByte((byte)kind);
    }

    /// <summary>
    /// This thread's writer, emptied and started with <paramref name="kind"/>, when the command is
    /// expected to fit in <see cref="MaxReusedBytes"/>; otherwise a new writer. What it holds is valid
    /// only until the thread's next call: the caller must copy it (or be done with it) first.
    /// </summary>
    public static CommandWriter Reused(CommandKind kind, int sizeHint)
    {
        if (sizeHint > MaxReusedBytes)
        {
            return new CommandWriter(kind, sizeHint);
        }

        var writer = t_reused ??= new CommandWriter(kind, MaxReusedBytes / 16);
        writer._buffer.ResetWrittenCount();
        writer.WriteByte((byte)kind);
        return writer;
    }

    public void WriteByte(byte value)
    {
        _buffer.GetSpan(1)[0] = value;
        _buffer.Advance(1);
    }

    public void WriteBool(bool value) => WriteByte(value ? (byte)1 : (byte)0);

    public void WriteUInt64(ulong value)
    {
        _buffer.Advance(Leb128.Write(_buffer.GetSpan(Leb128.MaxBytes), value));
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
