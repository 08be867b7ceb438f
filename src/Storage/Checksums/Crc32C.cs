using System.Buffers.Binary;
using System.Numerics;

namespace EmbeddedRaft.Storage;

/// <summary>
/// CRC-32C (Castagnoli, as in iSCSI and ext4), hardware-accelerated through
/// <see cref="BitOperations.Crc32C(uint, ulong)"/>. <see cref="Append"/> continues a checksum, so
/// <c>Append(Append(0, a), b) == Append(0, a ++ b)</c>: that is what chains records together.
/// </summary>
internal static class Crc32C
{
    /// <summary>Continues <paramref name="crc"/> (0 to start) over <paramref name="data"/>.</summary>
    public static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        // The standard pre- and post-inversion, so that Append(0, "123456789") == 0xE3069283.
        uint state = ~crc;
        while (data.Length >= 32)
        {
            state = BitOperations.Crc32C(state, BinaryPrimitives.ReadUInt64LittleEndian(data));
            state = BitOperations.Crc32C(state, BinaryPrimitives.ReadUInt64LittleEndian(data[8..]));
            state = BitOperations.Crc32C(state, BinaryPrimitives.ReadUInt64LittleEndian(data[16..]));
            state = BitOperations.Crc32C(state, BinaryPrimitives.ReadUInt64LittleEndian(data[24..]));
            data = data[32..];
        }

        while (data.Length >= 8)
        {
            state = BitOperations.Crc32C(state, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[8..];
        }

        foreach (byte b in data)
        {
            state = BitOperations.Crc32C(state, b);
        }

        return ~state;
    }
}
