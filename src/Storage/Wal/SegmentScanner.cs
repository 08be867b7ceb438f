using System.Buffers;
using System.Buffers.Binary;
using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Storage.Wal;

/// <summary>
/// Reads the frames of one segment file in order through one pooled buffer (bounded memory: the
/// buffer grows only to hold the largest frame), verifying the crc chain as it goes.
/// Not thread-safe; one scanner per reader.
/// </summary>
/// <remarks>
/// In a recycled segment (<see cref="SegmentHeader.IsRecycled"/>) the bytes past the last frame
/// are the file's previous life: stale frames, or pieces of them. Every frame there is checked
/// against this life's <see cref="FrameTag"/>, and a word that does not decode under it is the end
/// of this life's frames (<see cref="ScanStatus.End"/>), not damage; a torn write's lost pieces
/// read as stale bytes, not zeros, so no check here relies on zeros past the tail.
/// </remarks>
internal sealed class SegmentScanner : IDisposable
{
    private const int InitialBufferSizeBytes = 1024 * 1024;

    private readonly IStorageFile _file;
    private readonly long _limit;
    private byte[] _buffer;
    private FrameTag _tag;
    private long _bufferFileOffset;
    private int _bufferCount;

    /// <param name="file">The segment; the scanner does not own it.</param>
    /// <param name="limit">Bytes of the file to consider (the file's length, or a reader's end position).</param>
    public SegmentScanner(IStorageFile file, long limit)
    {
        _file = file;
        _limit = limit;
        _buffer = ArrayPool<byte>.Shared.Rent((int)Math.Min(InitialBufferSizeBytes, Math.Max(limit, WalFormat.SegmentHeaderFrameSizeBytes)));
    }

    public string Path => _file.Path;

    /// <summary>The offset of the next frame. Invariant: a multiple of 8.</summary>
    public long Offset { get; private set; }

    /// <summary>The chained crc of the last valid frame (of the header right after <see cref="ReadHeader"/>).</summary>
    public uint Crc { get; private set; }

    // The last frame returned by Next (valid until the next call).
    public byte Type { get; private set; }

    public ulong Index { get; private set; }

    /// <summary>The last frame's synced word as an offset: the log was durable up to here when the frame was appended.</summary>
    public long SyncedOffset { get; private set; }

    public long FrameOffset { get; private set; }

    public ReadOnlyMemory<byte> Payload { get; private set; }

    // Why the last Next returned Bad, and whether a torn write can explain it.
    public string BadReason { get; private set; } = "";

    public bool BadIsTornCompatible { get; private set; }

    /// <summary>After a <see cref="ScanStatus.Bad"/> frame that fits before the limit: where it ends (its offset plus its size); else its offset.</summary>
    public long BadFrameEnd { get; private set; }

    /// <summary>True once <see cref="ReadHeader"/> read a recycled segment's header.</summary>
    public bool IsRecycled => _tag.IsTagged;

    /// <summary>The bytes of the file this scanner considers.</summary>
    public long Limit => _limit;

    /// <summary>
    /// Reads and checks the segment header record at offset 0. A segment header is durable before
    /// the segment gets its name, so any failure here is corruption, never a torn write.
    /// </summary>
    /// <exception cref="CorruptionException">The header is missing, malformed, fails its crc, or disagrees with the file name.</exception>
    public SegmentHeader ReadHeader(long expectedSequence, ulong expectedFirstIndex)
    {
        if (Offset != 0)
        {
            throw new InvariantViolationException("ReadHeader must be the first read of a scanner.");
        }

        var frame = Fill(0, WalFormat.SegmentHeaderFrameSizeBytes);
        if (frame.Length < WalFormat.SegmentHeaderFrameSizeBytes)
        {
            throw new CorruptionException(Path, 0, "The segment is shorter than its header record.");
        }

        ulong word = BinaryPrimitives.ReadUInt64LittleEndian(frame);
        if (!WalFormat.TryDecodeLengthWord(word, out int length, out byte type)
            || type != WalFormat.SegmentHeaderType
            || length != WalFormat.SegmentHeaderPayloadSizeBytes)
        {
            throw new CorruptionException(Path, 0, "The first record is not a segment header.");
        }

        var payload = frame.Slice(WalFormat.FrameHeaderSizeBytes, WalFormat.SegmentHeaderPayloadSizeBytes);
        var header = new SegmentHeader(
            Magic: BinaryPrimitives.ReadUInt64LittleEndian(payload),
            Version: BinaryPrimitives.ReadUInt32LittleEndian(payload[8..]),
            Sequence: BinaryPrimitives.ReadInt64LittleEndian(payload[16..]),
            FirstIndex: BinaryPrimitives.ReadUInt64LittleEndian(payload[24..]),
            PreviousCrc: BinaryPrimitives.ReadUInt32LittleEndian(payload[32..]),
            Flags: BinaryPrimitives.ReadUInt32LittleEndian(payload[12..]));
        if (header.Magic == WalFormat.SegmentMagic && header.Version == 1
            && BinaryPrimitives.ReadUInt32LittleEndian(frame[16..]) == Crc32C.Append(Crc32C.Append(header.PreviousCrc, frame[..16]), payload))
        {
            // An intact version-1 header (its crc at bytes 16-19, over bytes 0-15): not damage but
            // a format this build does not read. Version 1 was written only by pre-release builds
            // and nothing with it was published, so there is no conversion (docs/formats.md).
            throw new NotSupportedException($"'{Path}' is a write-ahead log segment in format version 1; this build reads only version {WalFormat.FormatVersion} and does not convert pre-release logs. Read it with the build that wrote it, or start a new log directory.");
        }

        uint stored = BinaryPrimitives.ReadUInt32LittleEndian(frame[20..]);
        uint computed = Crc32C.Append(Crc32C.Append(header.PreviousCrc, frame[..20]), payload);
        if (computed != stored)
        {
            throw new CorruptionException(Path, 0, $"The segment header fails its crc (stored {stored:x8}, computed {computed:x8}).");
        }

        if (header.Magic != WalFormat.SegmentMagic)
        {
            throw new CorruptionException(Path, 0, $"Unknown segment magic {header.Magic:x16}.");
        }

        if (header.Version is < WalFormat.OldestReadableFormatVersion or > WalFormat.FormatVersion)
        {
            // An intact header (its crc matched) of a format this build does not know: a newer build wrote it.
            throw new NotSupportedException($"'{Path}' is a write-ahead log segment in format version {header.Version}; this build reads versions {WalFormat.OldestReadableFormatVersion} to {WalFormat.FormatVersion}. Open it with the build that wrote it or a newer one.");
        }

        // Version 2 had no flags (its bytes 12-15 were reserved, zero); version 3 knows one.
        uint knownFlags = header.Version >= 3 ? WalFormat.SegmentFlagRecycled : 0;
        if (header.Sequence != expectedSequence || header.FirstIndex != expectedFirstIndex
            || BinaryPrimitives.ReadUInt64LittleEndian(frame[8..]) != header.FirstIndex
            || BinaryPrimitives.ReadUInt32LittleEndian(frame[16..]) != 0
            || (header.Flags & ~knownFlags) != 0
            || BinaryPrimitives.ReadUInt32LittleEndian(payload[36..]) != 0)
        {
            throw new CorruptionException(Path, 0, $"The segment header (sequence {header.Sequence}, first index {header.FirstIndex}, flags {header.Flags:x}) disagrees with the file name or has unknown flags or non-zero reserved or synced fields.");
        }

        _tag = header.Tag;
        Crc = computed;
        Offset = WalFormat.SegmentHeaderFrameSizeBytes;
        return header;
    }

    /// <summary>Reads the frame at <see cref="Offset"/>; see <see cref="ScanStatus"/>.</summary>
    public ScanStatus Next()
    {
        long offset = Offset;
        if (offset + sizeof(ulong) > _limit)
        {
            return ScanStatus.End;
        }

        BadFrameEnd = offset;
        ulong word = BinaryPrimitives.ReadUInt64LittleEndian(Fill(offset, sizeof(ulong)));
        if (word == 0)
        {
            return ScanStatus.End;
        }

        if (!WalFormat.TryDecodeLengthWord(word, _tag, out int length, out byte type))
        {
            // The word is written in one aligned piece: a torn write leaves it whole or as it was.
            // Over zeros any other value is damage; in a recycled segment it is a previous life's
            // byte (or a lost piece that reads as one): no frame of this life starts here.
            return _tag.IsTagged ? ScanStatus.End : Bad($"Invalid length word {word:x16}.", tornCompatible: false);
        }

        long frameSize = WalFormat.FrameSize(length);
        if (frameSize > _limit - offset)
        {
            // Bytes past the end of the file read as the zeros a lost write leaves.
            return Bad($"A {length}-byte record runs past the end ({_limit}).", tornCompatible: true);
        }

        BadFrameEnd = offset + frameSize;

        var frame = Fill(offset, (int)frameSize);
        if (frame.Length != frameSize)
        {
            throw new InvariantViolationException("Fill returned fewer bytes than the limit allows.");
        }

        var payload = frame.Slice(WalFormat.FrameHeaderSizeBytes, length);
        if (frame[(WalFormat.FrameHeaderSizeBytes + length)..].ContainsAnyExcept((byte)0))
        {
            // Padding is written as zeros over zeros: a torn write cannot make it non-zero. Over a
            // previous life's bytes a lost piece of padding reads as whatever was there.
            return Bad("Non-zero padding.", tornCompatible: _tag.IsTagged);
        }

        uint stored = BinaryPrimitives.ReadUInt32LittleEndian(frame[20..]);
        uint computed = WalFormat.FrameCrc(Crc, _tag, frame, payload);
        if (stored != computed)
        {
            // A lost piece reads as zeros over zeros, as stale bytes in a recycled segment.
            return Bad($"Crc mismatch (stored {stored:x8}, computed {computed:x8}).", _tag.IsTagged || HasZeroPiece(offset, frame[..(WalFormat.FrameHeaderSizeBytes + length)]));
        }

        long synced = (long)BinaryPrimitives.ReadUInt32LittleEndian(frame[16..]) * WalFormat.Alignment;
        if (synced > offset)
        {
            // The log claims only offsets a completed flush covered, all before the frame itself.
            return Bad($"The frame claims the log was synced up to offset {synced}, past its own start.", tornCompatible: false);
        }

        if (type == WalFormat.SegmentHeaderType && !WalFormat.IsSyncMarkPayload(payload))
        {
            return Bad("A segment header record in the middle of a segment.", tornCompatible: false);
        }

        Crc = computed;
        Type = type;
        Index = BinaryPrimitives.ReadUInt64LittleEndian(frame[8..]);
        SyncedOffset = synced;
        FrameOffset = offset;
        Payload = _buffer.AsMemory((int)(offset - _bufferFileOffset) + WalFormat.FrameHeaderSizeBytes, length);
        Offset = offset + frameSize;
        return ScanStatus.Frame;
    }

    /// <summary>
    /// After <see cref="Next"/> returned <see cref="ScanStatus.Bad"/> (or a zero word) at
    /// <paramref name="damageOffset"/>, looks in [damageOffset, <paramref name="end"/>) for a genuine
    /// frame whose synced word claims an offset past <paramref name="damageOffset"/>: proof that the
    /// damaged bytes had been flushed, so they are corruption, not a torn write. Without proof,
    /// <paramref name="genuineEnd"/> is the end of the last genuine frame found (<paramref name="damageOffset"/>
    /// when none): in a recycled segment, where this life's frames past the damage end and the
    /// previous life's stale bytes begin.
    /// </summary>
    /// <remarks>
    /// The chain through the damage is lost, so a frame is taken as genuine when it is the second
    /// of two adjacent frames that check against each other: at an 8-aligned offset p a length
    /// word decodes, and the frame right after it verifies its crc continued from the crc stored
    /// at p (and its padding and synced word are well-formed); for the damaged frame itself also
    /// continued from the crc its bytes give on the chain before it, which is the right one when
    /// the damage hit only its stored crc (then the frame after it is proof even when it is the
    /// last, such as a sync mark); and any frame after the damaged one also continued from the
    /// damaged frame's stored crc, which is the right one when the damage hit only its length word
    /// (a recycled segment reads such a word as the end, not as damage). Chance data passes a pair
    /// check with probability about 2^-56 per offset and the check from the damaged frame's crc
    /// (one word and one crc) about 2^-48; over the 2^23 offsets of a 64 MiB recycled segment that
    /// is about 2^-25 per open, and a chance pass must also claim an offset past the damage.
    /// Checking every 8-aligned offset, not only the damaged frame's successor, also finds proof
    /// when the damage hit the stored crc or a length word, or zeroed a whole sector (a zero word
    /// does not say where the next frame starts). The scan runs only on a repair path (and at every
    /// open of a recycled last segment) and stops at the first proof. Bounded by (end - damageOffset) / 8 steps.
    /// </remarks>
    public bool TryFindSyncedClaimBeyond(long damageOffset, long end, out long frameOffset, out long syncedOffset, out long genuineEnd)
    {
        genuineEnd = damageOffset;
        // The damaged frame's stored crc: when the damage hit only its length word (which then
        // says nothing of where its successor starts), that successor, wherever it is, chains from it.
        uint? damagedStoredCrc = damageOffset + WalFormat.FrameHeaderSizeBytes <= _limit
            ? BinaryPrimitives.ReadUInt32LittleEndian(Fill(damageOffset + 20, sizeof(uint)))
            : null;
        for (long p = damageOffset; p + WalFormat.FrameHeaderSizeBytes <= end; p += WalFormat.Alignment)
        {
            ulong word = BinaryPrimitives.ReadUInt64LittleEndian(Fill(p, sizeof(ulong)));
            if (word == 0 || !WalFormat.TryDecodeLengthWord(word, _tag, out int length, out _))
            {
                continue;
            }

            if (p > damageOffset && damagedStoredCrc is uint damagedCrc
                && TryVerifyFrameFrom(p, _limit, damagedCrc, out long claimedAfterDamage, out long successorEnd))
            {
                genuineEnd = Math.Max(genuineEnd, successorEnd);
                if (claimedAfterDamage > damageOffset)
                {
                    frameOffset = p;
                    syncedOffset = claimedAfterDamage;
                    return true;
                }
            }

            long next = p + WalFormat.FrameSize(length);
            if (next + WalFormat.FrameHeaderSizeBytes > end)
            {
                continue;
            }

            // The frame may end in zero padding past the last non-zero byte: bound it by the limit, not by end.
            uint seed = BinaryPrimitives.ReadUInt32LittleEndian(Fill(p + 20, sizeof(uint)));
            bool genuine = TryVerifyFrameFrom(next, _limit, seed, out long claimed, out long nextEnd);
            if (!genuine && p == damageOffset && next <= _limit)
            {
                // When the damage hit only the damaged frame's stored crc, its successor chains from
                // the crc its intact bytes give, continued from the chain before the damage (Crc).
                genuine = TryVerifyFrameFrom(next, _limit, ChainedCrcOf(p, length), out claimed, out nextEnd);
            }

            if (genuine)
            {
                genuineEnd = Math.Max(genuineEnd, nextEnd);
                if (claimed > damageOffset)
                {
                    frameOffset = next;
                    syncedOffset = claimed;
                    return true;
                }
            }
        }

        frameOffset = 0;
        syncedOffset = 0;
        return false;
    }

    /// <summary>The crc the frame at <paramref name="offset"/> would carry, continued from the chain's <see cref="Crc"/>.</summary>
    private uint ChainedCrcOf(long offset, int payloadLength)
    {
        var frame = Fill(offset, WalFormat.FrameHeaderSizeBytes + payloadLength);
        return WalFormat.FrameCrc(Crc, _tag, frame, frame.Slice(WalFormat.FrameHeaderSizeBytes, payloadLength));
    }

    /// <summary>True when a well-formed frame at <paramref name="offset"/>, before <paramref name="end"/>, verifies its crc continued from <paramref name="seed"/>; returns its synced offset.</summary>
    private bool TryVerifyFrameFrom(long offset, long end, uint seed, out long syncedOffset, out long frameEnd)
    {
        syncedOffset = 0;
        frameEnd = offset;
        ulong word = BinaryPrimitives.ReadUInt64LittleEndian(Fill(offset, sizeof(ulong)));
        if (word == 0 || !WalFormat.TryDecodeLengthWord(word, _tag, out int length, out _))
        {
            return false;
        }

        long frameSize = WalFormat.FrameSize(length);
        if (frameSize > end - offset)
        {
            return false;
        }

        var frame = Fill(offset, (int)frameSize);
        if (frame.Length != frameSize || frame[(WalFormat.FrameHeaderSizeBytes + length)..].ContainsAnyExcept((byte)0))
        {
            return false;
        }

        uint computed = WalFormat.FrameCrc(seed, _tag, frame, frame.Slice(WalFormat.FrameHeaderSizeBytes, length));
        long synced = (long)BinaryPrimitives.ReadUInt32LittleEndian(frame[16..]) * WalFormat.Alignment;
        if (computed != BinaryPrimitives.ReadUInt32LittleEndian(frame[20..]) || synced > offset)
        {
            return false;
        }

        syncedOffset = synced;
        frameEnd = offset + frameSize;
        return true;
    }

    /// <summary>The offset just past the last non-zero byte at or after <paramref name="from"/> (or <paramref name="from"/> when all are zero).</summary>
    public long EndOfNonZeroBytes(long from)
    {
        long end = from;
        for (long chunk = from; chunk < _limit; chunk += _buffer.Length)
        {
            var bytes = Fill(chunk, (int)Math.Min(_buffer.Length, _limit - chunk));
            int last = bytes.LastIndexOfAnyExcept((byte)0);
            if (last >= 0)
            {
                end = chunk + last + 1;
            }

            if (bytes.Length == 0)
            {
                break;
            }
        }

        return end;
    }

    public void Dispose()
    {
        var buffer = _buffer;
        _buffer = [];
        Payload = default;
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// True when some piece of the frame that one write could have lost on its own — its
    /// intersection with a 512-byte sector — reads as all zeros, so a torn write can explain a
    /// crc mismatch. Padding is left out: it is zero whether written or not.
    /// </summary>
    private static bool HasZeroPiece(long frameOffset, ReadOnlySpan<byte> frame)
    {
        int start = 0;
        while (start < frame.Length)
        {
            long absolute = frameOffset + start;
            int pieceLength = (int)Math.Min(frame.Length - start, WalFormat.SectorSizeBytes - (absolute % WalFormat.SectorSizeBytes));
            if (!frame.Slice(start, pieceLength).ContainsAnyExcept((byte)0))
            {
                return true;
            }

            start += pieceLength;
        }

        return false;
    }

    private ScanStatus Bad(string reason, bool tornCompatible)
    {
        BadReason = reason;
        BadIsTornCompatible = tornCompatible;
        return ScanStatus.Bad;
    }

    /// <summary>Makes [offset, offset + count) available in the buffer, as far as the limit allows, and returns it.</summary>
    private ReadOnlySpan<byte> Fill(long offset, int count)
    {
        long available = Math.Min(count, _limit - offset);
        if (offset >= _bufferFileOffset && offset + available <= _bufferFileOffset + _bufferCount)
        {
            return _buffer.AsSpan((int)(offset - _bufferFileOffset), (int)available);
        }

        if (count > _buffer.Length)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = ArrayPool<byte>.Shared.Rent(count);
        }

        int toRead = (int)Math.Min(_buffer.Length, _limit - offset);
        _bufferFileOffset = offset;
        _bufferCount = _file.Read(offset, _buffer.AsSpan(0, toRead));
        return _buffer.AsSpan(0, Math.Min(count, _bufferCount));
    }
}
