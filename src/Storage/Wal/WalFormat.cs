using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;

namespace EmbeddedRaft.Storage.Wal;

/// <summary>
/// The on-disk frame layout of the write-ahead log (docs/formats.md, "Write-ahead log"). Every
/// frame starts at a multiple of 8 and is padded with zeros to a multiple of 8:
/// <code>
/// offset size
///  0      8   length word  bits 0-31 payload length, 32-39 record type, 40-47 marker 0xA5,
///                          48-63 check = fold16(CRC-32C of bits 0-47)
///  8      8   index        the caller's index (a Raft index), 0 for none
/// 16      4   crc          CRC-32C chained: Append(previous frame's crc, bytes 0-15 ++ payload)
/// 20      4   reserved     zero
/// 24      n   payload
/// 24+n    p   padding      zeros, p = (8 - n % 8) % 8
/// </code>
/// The length word is one aligned 8-byte word, so it lies inside one 512-byte sector and one
/// write: after a crash it holds either what was written or the zeros that were there before,
/// never a mixture. Its own check makes any other value (a flipped bit) detectable as corruption.
/// </summary>
internal static class WalFormat
{
    public const int FrameHeaderSizeBytes = 24;
    public const int Alignment = 8;
    public const byte Marker = 0xA5;
    public const byte SegmentHeaderType = 0;
    public const int SectorSizeBytes = 512;

    public const string SegmentExtension = ".wal";
    public const string TempSuffix = ".tmp";
    public const string TornSuffix = ".torn";
    public const string LockFileName = "wal.lock";

    /// <summary>The segment header record's payload: magic, version, sequence, first index, previous crc.</summary>
    public const int SegmentHeaderPayloadSizeBytes = 40;
    public const int SegmentHeaderFrameSizeBytes = FrameHeaderSizeBytes + SegmentHeaderPayloadSizeBytes;
    public const uint FormatVersion = 1;

    /// <summary>"ERWALSEG" read as a little-endian 64-bit integer.</summary>
    public static readonly ulong SegmentMagic = BinaryPrimitives.ReadUInt64LittleEndian("ERWALSEG"u8);

    public static int PaddingFor(int payloadLength) => (Alignment - (payloadLength % Alignment)) % Alignment;

    public static int FrameSize(int payloadLength) => FrameHeaderSizeBytes + payloadLength + PaddingFor(payloadLength);

    public static ulong EncodeLengthWord(int payloadLength, byte type)
    {
        ulong low = (uint)payloadLength | ((ulong)type << 32) | ((ulong)Marker << 40);
        return low | ((ulong)Check16(low) << 48);
    }

    /// <summary>
    /// Decodes a length word. Returns false for any word that <see cref="EncodeLengthWord"/> cannot
    /// produce (wrong marker or check); a zero word is handled by the caller before this.
    /// </summary>
    public static bool TryDecodeLengthWord(ulong word, out int payloadLength, out byte type)
    {
        ulong low = word & 0x0000_FFFF_FFFF_FFFFUL;
        payloadLength = (int)(uint)low;
        type = (byte)(low >> 32);
        return (byte)(low >> 40) == Marker
            && (ushort)(word >> 48) == Check16(low)
            && (uint)low <= int.MaxValue;
    }

    /// <summary>Folds a CRC-32C of the low 48 bits to 16 bits; detects every single-bit error in the word (pinned by a test).</summary>
    public static ushort Check16(ulong low48)
    {
        uint crc = BitOperations.Crc32C(0xFFFF_FFFFu, low48);
        return (ushort)(crc ^ (crc >> 16));
    }

    /// <summary>
    /// Writes a frame header for <paramref name="payload"/> into <paramref name="destination"/>
    /// and returns the frame's chained crc. The payload and padding are written by the caller.
    /// </summary>
    public static uint WriteFrameHeader(Span<byte> destination, byte type, ulong index, ReadOnlySpan<byte> payload, uint previousCrc)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(destination, EncodeLengthWord(payload.Length, type));
        BinaryPrimitives.WriteUInt64LittleEndian(destination[8..], index);
        uint crc = Crc32C.Append(Crc32C.Append(previousCrc, destination[..16]), payload);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[16..], crc);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[20..], 0);
        return crc;
    }

    /// <summary>Builds the complete header frame that opens a segment (record type 0).</summary>
    public static byte[] BuildSegmentHeaderFrame(long sequence, ulong firstIndex, uint previousCrc, out uint crc)
    {
        var frame = new byte[SegmentHeaderFrameSizeBytes];
        var payload = frame.AsSpan(FrameHeaderSizeBytes);
        BinaryPrimitives.WriteUInt64LittleEndian(payload, SegmentMagic);
        BinaryPrimitives.WriteUInt32LittleEndian(payload[8..], FormatVersion);
        BinaryPrimitives.WriteUInt32LittleEndian(payload[12..], 0);
        BinaryPrimitives.WriteInt64LittleEndian(payload[16..], sequence);
        BinaryPrimitives.WriteUInt64LittleEndian(payload[24..], firstIndex);
        BinaryPrimitives.WriteUInt32LittleEndian(payload[32..], previousCrc);
        BinaryPrimitives.WriteUInt32LittleEndian(payload[36..], 0);
        crc = WriteFrameHeader(frame, SegmentHeaderType, firstIndex, payload, previousCrc);
        return frame;
    }

    public static string SegmentFileName(long sequence, ulong firstIndex) =>
        string.Create(CultureInfo.InvariantCulture, $"{sequence:x16}-{firstIndex:x16}{SegmentExtension}");

    /// <summary>Parses <c>%016x-%016x.wal</c>; any other name (temp files, side files, the lock) is not a segment.</summary>
    public static bool TryParseSegmentFileName(string name, out long sequence, out ulong firstIndex)
    {
        sequence = 0;
        firstIndex = 0;
        if (name.Length != 33 + SegmentExtension.Length || name[16] != '-' || !name.EndsWith(SegmentExtension, StringComparison.Ordinal))
        {
            return false;
        }

        return IsLowerHex(name.AsSpan(0, 16)) && IsLowerHex(name.AsSpan(17, 16))
            && long.TryParse(name.AsSpan(0, 16), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out sequence)
            && sequence >= 0
            && ulong.TryParse(name.AsSpan(17, 16), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out firstIndex);
    }

    private static bool IsLowerHex(ReadOnlySpan<char> text)
    {
        foreach (char c in text)
        {
            if (c is not ((>= '0' and <= '9') or (>= 'a' and <= 'f')))
            {
                return false;
            }
        }

        return true;
    }
}
