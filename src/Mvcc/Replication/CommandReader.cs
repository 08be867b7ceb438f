using System.Buffers.Binary;
using System.Text;

namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>
/// Reads the primitives <see cref="CommandWriter"/> writes, checking every length against the bytes
/// left: malformed input throws <see cref="InvalidDataException"/> naming the offset and what was
/// expected, and never allocates more than the input's size.
/// </summary>
internal ref struct CommandReader
{
    private readonly ReadOnlySpan<byte> _data;
    private int _offset;

    public CommandReader(ReadOnlySpan<byte> data)
    {
        _data = data;
        _offset = 0;
    }

    public readonly int Remaining => _data.Length - _offset;

    public byte ReadByte(string what)
    {
        if (_offset >= _data.Length)
        {
            throw Truncated(what);
        }

        return _data[_offset++];
    }

    public bool ReadBool(string what)
    {
        byte b = ReadByte(what);
        return b switch
        {
            0 => false,
            1 => true,
            _ => throw new InvalidDataException($"Replicated store command: {what} at offset {_offset - 1} is {b}, not a boolean (0 or 1)."),
        };
    }

    public ulong ReadUInt64(string what) => ReadUInt64(what, "");

    /// <summary>A varint; <paramref name="what"/> and <paramref name="suffix"/> name it in an error only (so no name is built per read).</summary>
    private ulong ReadUInt64(string what, string suffix)
    {
        ulong value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (_offset >= _data.Length)
            {
                throw Truncated(what + suffix);
            }

            byte b = _data[_offset++];
            if (shift == 63 && b > 1)
            {
                throw new InvalidDataException($"Replicated store command: {what}{suffix} at offset {_offset - 1} overflows 64 bits.");
            }

            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return value;
            }
        }

        throw new InvalidDataException($"Replicated store command: {what}{suffix} at offset {_offset} is a varint longer than 10 bytes.");
    }

    public long ReadInt64(string what)
    {
        ulong raw = ReadUInt64(what);
        return (long)(raw >> 1) ^ -(long)(raw & 1);
    }

    /// <summary>A count of items that each take at least one byte: never more than the bytes left.</summary>
    public int ReadCount(string what)
    {
        ulong count = ReadUInt64(what);
        if (count > (ulong)Remaining)
        {
            throw new InvalidDataException($"Replicated store command: {what} is {count}, more than the {Remaining} bytes left at offset {_offset}.");
        }

        return (int)count;
    }

    public byte[] ReadBytes(string what)
    {
        int length = ReadLength(what);
        var value = _data.Slice(_offset, length).ToArray();
        _offset += length;
        return value;
    }

    /// <summary>A byte string's place in the input (its offset and length), for a caller that slices the bytes instead of copying them.</summary>
    public Range ReadRange(string what)
    {
        int length = ReadLength(what);
        var range = new Range(_offset, _offset + length);
        _offset += length;
        return range;
    }

    public string ReadString(string what)
    {
        int length = ReadLength(what);
        try
        {
            var value = new UTF8Encoding(false, true).GetString(_data.Slice(_offset, length));
            _offset += length;
            return value;
        }
        catch (DecoderFallbackException e)
        {
            throw new InvalidDataException($"Replicated store command: {what} at offset {_offset} is not UTF-8.", e);
        }
    }

    public ulong ReadFixed64(string what)
    {
        if (Remaining < 8)
        {
            throw Truncated(what);
        }

        ulong value = BinaryPrimitives.ReadUInt64BigEndian(_data.Slice(_offset, 8));
        _offset += 8;
        return value;
    }

    public T ReadEnum<T>(string what)
        where T : struct, Enum
    {
        byte b = ReadByte(what);
        var value = (T)Enum.ToObject(typeof(T), b);
        if (!Enum.IsDefined(value))
        {
            throw new InvalidDataException($"Replicated store command: {what} at offset {_offset - 1} is {b}, not a {typeof(T).Name}.");
        }

        return value;
    }

    /// <summary>Checks that the command ended exactly where its encoding did.</summary>
    public readonly void ExpectEnd(string what)
    {
        if (Remaining != 0)
        {
            throw new InvalidDataException($"Replicated store command: {Remaining} bytes left over after {what} (offset {_offset} of {_data.Length}).");
        }
    }

    private int ReadLength(string what)
    {
        ulong length = ReadUInt64(what, " length");
        if (length > (ulong)Remaining)
        {
            throw new InvalidDataException($"Replicated store command: {what} claims {length} bytes, only {Remaining} left at offset {_offset}.");
        }

        return (int)length;
    }

    private readonly InvalidDataException Truncated(string what) =>
        new($"Replicated store command: truncated at offset {_offset} of {_data.Length}, reading {what}.");
}
