using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;

namespace EmbeddedRaft.Storage.Wal;

/// <summary>
/// The on-disk frame layout of the write-ahead log (docs/formats.md, "Write-ahead log"), format
/// version 3 (version 2 segments are read too). Every frame starts at a multiple of 8 and is padded with zeros to a multiple of 8:
/// <code>
/// offset size
///  0      8   length word  bits 0-31 payload length, 32-39 record type, 40-47 marker 0xA5,
///                          48-63 check = fold16(CRC-32C of bits 0-47)
///  8      8   index        the caller's index (a Raft index), 0 for none
/// 16      4   synced       the segment offset, in 8-byte words, up to which the log was durable
///                          (a flush had completed) when this frame was appended; 0 for none
/// 20      4   crc          CRC-32C chained: Append(previous frame's crc, bytes 0-19 ++ payload)
/// 24      n   payload
/// 24+n    p   padding      zeros, p = (8 - n % 8) % 8
/// </code>
/// The length word is one aligned 8-byte word, so it lies inside one 512-byte sector and one
/// write: after a crash it holds either what was written or the zeros that were there before,
/// never a mixture. Its own check makes any other value (a flipped bit) detectable as corruption.
/// <para>Why the synced word (version 2). A torn write can only damage bytes that were never
/// flushed, but a damaged frame whose payload holds an all-zero sector piece looks exactly like a
/// torn one. The synced word breaks the tie: it is taken under the log's lock from the durable
/// position, which moves only after a flush has returned, so it never claims a byte that was not
/// durable. Any genuine frame found after damage at offset o that claims a synced offset beyond
/// o proves the damaged bytes had been flushed: corruption, never a torn write. It is inside the
/// crc, so a flipped bit cannot forge a claim.</para>
/// <para>A segment reserves room at its end for a sync mark (a type-0 frame written at a clean
/// close, whose synced word covers every record before it) and for a 16-byte trailer in its last
/// bytes, written only after the next segment durably exists, naming it; so a missing last
/// segment is noticed.</para>
/// <para>Why version 3: a released segment's file is reused for a later segment without being
/// zeroed (a recycled segment, flagged in its header), so its blocks stay written and a flush into
/// them writes no extent change. Its frames are tagged (<see cref="FrameTag"/>): the stale frames
/// of the file's previous life past the tail fail this life's checks.</para>
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

    /// <summary>
    /// Version 3 added recycled segments: the header's bytes 12-15 hold flags
    /// (<see cref="SegmentFlagRecycled"/>), and a recycled segment's frames are tagged. A segment
    /// without the flag is laid out exactly as in version 2, which this build reads (and appends
    /// to: the tail segment of a version-2 log keeps its version until the next segment).
    /// Version 2 added the synced word at bytes 16-19 (the crc moved to 20-23), the sync mark and
    /// the segment trailer. Version 1 logs were written only by pre-release builds and are refused
    /// with a clear error, not converted: nothing with version 1 was ever published.
    /// </summary>
    public const uint FormatVersion = 3;

    /// <summary>The oldest segment format this build reads.</summary>
    public const uint OldestReadableFormatVersion = 2;

    /// <summary>
    /// Header flag (version 3): the segment's file was a released segment's, reused without being
    /// zeroed. Its frames are tagged with <see cref="FrameTag.ForSegment"/>, and the bytes
    /// past its tail are a previous life's, not zeros.
    /// </summary>
    public const uint SegmentFlagRecycled = 1;

    /// <summary>The sync mark's payload, "ERWALSYN": non-zero so that no sector piece of the mark reads as zeros.</summary>
    public const int SyncMarkPayloadSizeBytes = 8;
    public const int SyncMarkFrameSizeBytes = FrameHeaderSizeBytes + SyncMarkPayloadSizeBytes;

    /// <summary>
    /// The segment trailer: the last 16 bytes of every segment file. Zero until the next segment
    /// durably exists; then bytes 0-7 hold the next segment's first index, 8-11 the magic "ERNX",
    /// 12-15 the CRC-32C of bytes 0-11. Sixteen bytes at a 16-aligned offset inside the file's last
    /// 512-byte sector: a torn write leaves them whole or zero.
    /// </summary>
    public const int SegmentTrailerSizeBytes = 16;

    /// <summary>Bytes at the end of every segment that records never use: room for a sync mark and the trailer.</summary>
    public const int SegmentReservedEndBytes = SyncMarkFrameSizeBytes + SegmentTrailerSizeBytes;

    /// <summary>
    /// Zeros the log writes over a segment's bytes past its tail: a repaired tail's (written in
    /// pieces of this length) and the zeros ahead of a quiet run (at most 64 KiB past the run's
    /// 4 KiB block, so up to 68 KiB in one piece). Shared and never written to.
    /// </summary>
    public static readonly byte[] Zeros = new byte[68 * 1024];

    /// <summary>The largest segment the synced word (a 32-bit count of 8-byte words) can describe, rounded down to 16 GiB.</summary>
    public const long MaxSegmentSizeBytes = 16L * 1024 * 1024 * 1024;

    public static readonly ulong SyncMarkMagic = BinaryPrimitives.ReadUInt64LittleEndian("ERWALSYN"u8);
    public static readonly uint SegmentTrailerMagic = BinaryPrimitives.ReadUInt32LittleEndian("ERNX"u8);

    /// <summary>"ERWALSEG" read as a little-endian 64-bit integer.</summary>
    public static readonly ulong SegmentMagic = BinaryPrimitives.ReadUInt64LittleEndian("ERWALSEG"u8);

    public static int PaddingFor(int payloadLength) => (Alignment - (payloadLength % Alignment)) % Alignment;

    public static int FrameSize(int payloadLength) => FrameHeaderSizeBytes + payloadLength + PaddingFor(payloadLength);

    /// <summary>The length word of a frame of <paramref name="payloadLength"/> bytes and <paramref name="type"/>, its check taken under <paramref name="tag"/> (none by default).</summary>
    public static ulong EncodeLengthWord(int payloadLength, byte type, FrameTag tag = default)
    {
        ulong low = (uint)payloadLength | ((ulong)type << 32) | ((ulong)Marker << 40);
        return low | ((ulong)Check16(low, tag) << 48);
    }

    /// <summary>
    /// Decodes a length word. Returns false for any word that <see cref="EncodeLengthWord(int, byte, FrameTag)"/> cannot
    /// produce (wrong marker or check); a zero word is handled by the caller before this.
    /// </summary>
    public static bool TryDecodeLengthWord(ulong word, out int payloadLength, out byte type) =>
        TryDecodeLengthWord(word, FrameTag.None, out payloadLength, out type);

    /// <summary>As <see cref="TryDecodeLengthWord(ulong, out int, out byte)"/>, for a frame tagged with <paramref name="tag"/>: a word with another tag fails its check.</summary>
    public static bool TryDecodeLengthWord(ulong word, FrameTag tag, out int payloadLength, out byte type)
    {
        ulong low = word & 0x0000_FFFF_FFFF_FFFFUL;
        payloadLength = (int)(uint)low;
        type = (byte)(low >> 32);
        return (byte)(low >> 40) == Marker
            && (ushort)(word >> 48) == Check16(low, tag)
            && (uint)low <= int.MaxValue;
    }

    /// <summary>
    /// Folds a CRC-32C of the low 48 bits to 16 bits; detects every single-bit error in the word
    /// (pinned by a test). A tagged frame's check starts from the CRC state after its tag's 4 bytes;
    /// a different start adds a constant to a CRC, so the single-bit guarantee holds for every tag.
    /// </summary>
    public static ushort Check16(ulong low48, FrameTag tag)
    {
        uint state = tag.IsTagged ? BitOperations.Crc32C(0xFFFF_FFFFu, tag.Value) : 0xFFFF_FFFFu;
        uint crc = BitOperations.Crc32C(state, low48);
        return (ushort)(crc ^ (crc >> 16));
    }

    /// <summary>
    /// A frame's chained crc: <paramref name="previousCrc"/> continued over the tag's 4 bytes
    /// (little-endian; only for a tagged frame), the header's bytes 0-19 and the payload.
    /// </summary>
    public static uint FrameCrc(uint previousCrc, FrameTag tag, ReadOnlySpan<byte> headerFirst20, ReadOnlySpan<byte> payload)
    {
        // Continuing over the tag's 4 little-endian bytes is one hardware step (Crc32C.Append's inversions around it).
        uint crc = tag.IsTagged ? ~BitOperations.Crc32C(~previousCrc, tag.Value) : previousCrc;
        return Crc32C.Append(Crc32C.Append(crc, headerFirst20[..20]), payload);
    }

    /// <summary>
    /// Writes a frame header for <paramref name="payload"/> into <paramref name="destination"/>
    /// and returns the frame's chained crc. The payload and padding are written by the caller.
    /// <paramref name="syncedOffset"/> is an offset of this segment that a completed flush covered
    /// when the frame was appended (0 for none), a multiple of 8. <paramref name="tag"/> is what the
    /// segment's frames carry (none unless it is recycled; never for its header).
    /// </summary>
    public static uint WriteFrameHeader(Span<byte> destination, byte type, ulong index, ReadOnlySpan<byte> payload, uint previousCrc, long syncedOffset, FrameTag tag = default)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(destination, EncodeLengthWord(payload.Length, type, tag));
        BinaryPrimitives.WriteUInt64LittleEndian(destination[8..], index);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[16..], EncodeSyncedWord(syncedOffset));
        uint crc = FrameCrc(previousCrc, tag, destination, payload);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[20..], crc);
        return crc;
    }

    /// <summary>The synced word for <paramref name="syncedOffset"/>: the offset in 8-byte words (frames start at multiples of 8).</summary>
    public static uint EncodeSyncedWord(long syncedOffset)
    {
        if (!(syncedOffset >= 0 && syncedOffset % Alignment == 0 && syncedOffset <= MaxSegmentSizeBytes))
        {
            throw new InvariantViolationException("A synced offset is a frame boundary inside a segment.");
        }

        return (uint)(syncedOffset / Alignment);
    }

    /// <summary>Builds the sync mark written at a clean close: a type-0 frame whose synced word is its own offset (everything before it is durable), tagged as the segment's frames are.</summary>
    public static byte[] BuildSyncMarkFrame(long offset, uint previousCrc, FrameTag tag, out uint crc)
    {
        var frame = new byte[SyncMarkFrameSizeBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(frame.AsSpan(FrameHeaderSizeBytes), SyncMarkMagic);
        crc = WriteFrameHeader(frame, SegmentHeaderType, 0, frame.AsSpan(FrameHeaderSizeBytes), previousCrc, offset, tag);
        return frame;
    }

    /// <summary>True when a type-0 frame's payload is a sync mark's.</summary>
    public static bool IsSyncMarkPayload(ReadOnlySpan<byte> payload) =>
        payload.Length == SyncMarkPayloadSizeBytes && BinaryPrimitives.ReadUInt64LittleEndian(payload) == SyncMarkMagic;

    /// <summary>Builds the trailer that says a segment's successor, with <paramref name="nextFirstIndex"/>, durably exists.</summary>
    public static byte[] BuildSegmentTrailer(ulong nextFirstIndex)
    {
        var trailer = new byte[SegmentTrailerSizeBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(trailer, nextFirstIndex);
        BinaryPrimitives.WriteUInt32LittleEndian(trailer.AsSpan(8), SegmentTrailerMagic);
        BinaryPrimitives.WriteUInt32LittleEndian(trailer.AsSpan(12), Crc32C.Append(0, trailer.AsSpan(0, 12)));
        return trailer;
    }

    /// <summary>Reads a segment trailer: absent (all zeros), present (and the next segment's first index), or damaged.</summary>
    public static SegmentTrailerState ReadSegmentTrailer(ReadOnlySpan<byte> trailer, out ulong nextFirstIndex)
    {
        nextFirstIndex = 0;
        if (!trailer.ContainsAnyExcept((byte)0))
        {
            return SegmentTrailerState.Absent;
        }

        if (BinaryPrimitives.ReadUInt32LittleEndian(trailer[8..]) != SegmentTrailerMagic
            || BinaryPrimitives.ReadUInt32LittleEndian(trailer[12..]) != Crc32C.Append(0, trailer[..12]))
        {
            return SegmentTrailerState.Damaged;
        }

        nextFirstIndex = BinaryPrimitives.ReadUInt64LittleEndian(trailer);
        return SegmentTrailerState.NamesNext;
    }

    /// <summary>
    /// Builds the complete header frame that opens a segment (record type 0), flagged
    /// <see cref="SegmentFlagRecycled"/> when <paramref name="recycled"/>. The header itself is never
    /// tagged: a reader learns the flag from it.
    /// </summary>
    public static byte[] BuildSegmentHeaderFrame(long sequence, ulong firstIndex, uint previousCrc, bool recycled, out uint crc)
    {
        var frame = new byte[SegmentHeaderFrameSizeBytes];
        var payload = frame.AsSpan(FrameHeaderSizeBytes);
        BinaryPrimitives.WriteUInt64LittleEndian(payload, SegmentMagic);
        BinaryPrimitives.WriteUInt32LittleEndian(payload[8..], FormatVersion);
        BinaryPrimitives.WriteUInt32LittleEndian(payload[12..], recycled ? SegmentFlagRecycled : 0);
        BinaryPrimitives.WriteInt64LittleEndian(payload[16..], sequence);
        BinaryPrimitives.WriteUInt64LittleEndian(payload[24..], firstIndex);
        BinaryPrimitives.WriteUInt32LittleEndian(payload[32..], previousCrc);
        BinaryPrimitives.WriteUInt32LittleEndian(payload[36..], 0);
        crc = WriteFrameHeader(frame, SegmentHeaderType, firstIndex, payload, previousCrc, syncedOffset: 0);
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
