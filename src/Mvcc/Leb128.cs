using System.Runtime.CompilerServices;

namespace EmbeddedRaft.Mvcc;

/// <summary>
/// Unsigned LEB128 (protobuf's varint): seven bits per byte, least significant first, the high bit
/// set on every byte but the last. One writer and one size for the encodings of this library that
/// use it: the stored value's version 2 header, the replicated store's commands and etcd's request
/// sizes. Each reader checks its own bounds and names its own errors, so none is shared here.
/// </summary>
internal static class Leb128
{
    /// <summary>The most bytes one 64-bit value takes.</summary>
    public const int MaxBytes = 10;

    /// <summary>Writes <paramref name="value"/> at the start of <paramref name="destination"/> (at least <see cref="Size"/> bytes); returns the bytes written.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Write(Span<byte> destination, ulong value)
    {
        int at = 0;
        while (value >= 0x80)
        {
            destination[at++] = (byte)(value | 0x80);
            value >>= 7;
        }

        destination[at++] = (byte)value;
        return at;
    }

    /// <summary>The bytes <see cref="Write"/> takes for <paramref name="value"/>: 1 to <see cref="MaxBytes"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Size(ulong value) => 1 + ((63 - System.Numerics.BitOperations.LeadingZeroCount(value | 1)) / 7);
}
