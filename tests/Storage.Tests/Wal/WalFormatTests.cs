using System.Buffers.Binary;
using EmbeddedRaft.Storage.Wal;

namespace EmbeddedRaft.Storage.Tests.Wal;

/// <summary>Pins the on-disk layout documented in docs/formats.md, "Write-ahead log".</summary>
public sealed class WalFormatTests
{
    [Test]
    public void FrameAndSegmentHeaderSizesMatchTheDocumentedLayout()
    {
        Assert.That(WalFormat.FrameHeaderSizeBytes, Is.EqualTo(24));
        Assert.That(WalFormat.SegmentHeaderPayloadSizeBytes, Is.EqualTo(40));
        Assert.That(WalFormat.SegmentHeaderFrameSizeBytes, Is.EqualTo(64));
        Assert.That(WalFormat.FrameSize(0), Is.EqualTo(24));
        Assert.That(WalFormat.FrameSize(1), Is.EqualTo(32));
        Assert.That(WalFormat.FrameSize(8), Is.EqualTo(32));
        Assert.That(WalFormat.FrameSize(9), Is.EqualTo(40));
    }

    [Test]
    public void Crc32CIsTheStandardCastagnoliChecksumAndChains()
    {
        Assert.That(Crc32C.Append(0, "123456789"u8), Is.EqualTo(0xE3069283u));
        var data = new byte[1000];
        new Random(7).NextBytes(data);
        for (int split = 0; split <= data.Length; split += 37)
        {
            Assert.That(Crc32C.Append(Crc32C.Append(0, data.AsSpan(0, split)), data.AsSpan(split)), Is.EqualTo(Crc32C.Append(0, data)));
        }
    }

    [Test]
    public void LengthWordLaysOutLengthTypeMarkerAndCheck()
    {
        ulong word = WalFormat.EncodeLengthWord(0x0102_0304, 0x7F);
        Assert.That(word & 0xFFFF_FFFF, Is.EqualTo(0x0102_0304UL));
        Assert.That((word >> 32) & 0xFF, Is.EqualTo(0x7FUL));
        Assert.That((word >> 40) & 0xFF, Is.EqualTo(0xA5UL));
        Assert.That(WalFormat.TryDecodeLengthWord(word, out int length, out byte type), Is.True);
        Assert.That((length, type), Is.EqualTo((0x0102_0304, (byte)0x7F)));
    }

    [Test]
    public void EverySingleBitFlipOfALengthWordIsRejected()
    {
        var random = new Random(11);
        for (int sample = 0; sample < 200; sample++)
        {
            ulong word = WalFormat.EncodeLengthWord(random.Next(0, 1 << 24), (byte)random.Next(0, 256));
            for (int bit = 0; bit < 64; bit++)
            {
                Assert.That(WalFormat.TryDecodeLengthWord(word ^ (1UL << bit), out _, out _), Is.False, $"word {word:x16}, bit {bit}");
            }
        }
    }

    [Test]
    public void SegmentHeaderFrameCarriesMagicSequenceFirstIndexAndPreviousCrc()
    {
        byte[] frame = WalFormat.BuildSegmentHeaderFrame(0x12, 0x34, 0xDEADBEEF, recycled: false, out uint crc);
        Assert.That(frame, Has.Length.EqualTo(64));
        Assert.That(System.Text.Encoding.ASCII.GetString(frame, 24, 8), Is.EqualTo("ERWALSEG"));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(32)), Is.EqualTo(3u), "format version 3");
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(36)), Is.EqualTo(0u), "no flags: written over zeros");
        Assert.That(BinaryPrimitives.ReadInt64LittleEndian(frame.AsSpan(40)), Is.EqualTo(0x12L));
        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(frame.AsSpan(48)), Is.EqualTo(0x34UL));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(56)), Is.EqualTo(0xDEADBEEFu));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(16)), Is.EqualTo(0u), "a header claims no synced offset");
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(20)), Is.EqualTo(crc));
        Assert.That(crc, Is.EqualTo(Crc32C.Append(Crc32C.Append(0xDEADBEEF, frame.AsSpan(0, 20)), frame.AsSpan(24))));
    }

    [Test]
    public void FrameHeaderCarriesTheSyncedOffsetInWordsInsideTheCrc()
    {
        var frame = new byte[WalFormat.FrameSize(3)];
        byte[] payload = [1, 2, 3];
        payload.CopyTo(frame.AsSpan(24));
        uint crc = WalFormat.WriteFrameHeader(frame, 7, 0x1234, payload, 0xCAFEF00D, syncedOffset: 4096);
        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(frame.AsSpan(8)), Is.EqualTo(0x1234UL));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(16)), Is.EqualTo(4096u / 8), "synced offset in 8-byte words");
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(20)), Is.EqualTo(crc));
        Assert.That(crc, Is.EqualTo(Crc32C.Append(Crc32C.Append(0xCAFEF00D, frame.AsSpan(0, 20)), payload)), "the crc covers the synced word");
        Assert.That(frame.AsSpan(27).ToArray(), Is.All.EqualTo((byte)0), "padding");
    }

    [Test]
    public void SyncMarkIsATypeZeroFrameClaimingItsOwnOffset()
    {
        byte[] mark = WalFormat.BuildSyncMarkFrame(0x2000, 0x11111111, FrameTag.None, out uint crc);
        Assert.That(WalFormat.SyncMarkFrameSizeBytes, Is.EqualTo(32));
        Assert.That(mark, Has.Length.EqualTo(32));
        Assert.That(WalFormat.TryDecodeLengthWord(BinaryPrimitives.ReadUInt64LittleEndian(mark), out int length, out byte type), Is.True);
        Assert.That((length, type), Is.EqualTo((8, (byte)0)));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(mark.AsSpan(16)), Is.EqualTo(0x2000u / 8));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(mark.AsSpan(20)), Is.EqualTo(crc));
        Assert.That(System.Text.Encoding.ASCII.GetString(mark, 24, 8), Is.EqualTo("ERWALSYN"));
    }

    [Test]
    public void SegmentTrailerNamesTheNextFirstIndexAndChecksItself()
    {
        byte[] trailer = WalFormat.BuildSegmentTrailer(0xABCDEF);
        Assert.That(trailer, Has.Length.EqualTo(WalFormat.SegmentTrailerSizeBytes).And.Length.EqualTo(16));
        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(trailer), Is.EqualTo(0xABCDEFUL));
        Assert.That(System.Text.Encoding.ASCII.GetString(trailer, 8, 4), Is.EqualTo("ERNX"));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(trailer.AsSpan(12)), Is.EqualTo(Crc32C.Append(0, trailer.AsSpan(0, 12))));
        Assert.That(WalFormat.ReadSegmentTrailer(trailer, out ulong next), Is.EqualTo(SegmentTrailerState.NamesNext));
        Assert.That(next, Is.EqualTo(0xABCDEFUL));
        Assert.That(WalFormat.ReadSegmentTrailer(new byte[16], out _), Is.EqualTo(SegmentTrailerState.Absent));
        for (int bit = 0; bit < 128; bit++)
        {
            var flipped = (byte[])trailer.Clone();
            flipped[bit / 8] ^= (byte)(1 << (bit % 8));
            Assert.That(WalFormat.ReadSegmentTrailer(flipped, out _), Is.EqualTo(SegmentTrailerState.Damaged), $"bit {bit}");
        }

        Assert.That(WalFormat.SegmentReservedEndBytes, Is.EqualTo(48));
        Assert.That(WalFormat.FormatVersion, Is.EqualTo(3u));
    }

    [Test]
    public void ARecycledSegmentsHeaderIsFlaggedAndItselfUntagged()
    {
        byte[] plain = WalFormat.BuildSegmentHeaderFrame(0x12, 0x34, 0xDEADBEEF, recycled: false, out _);
        byte[] frame = WalFormat.BuildSegmentHeaderFrame(0x12, 0x34, 0xDEADBEEF, recycled: true, out uint crc);
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(36)), Is.EqualTo(WalFormat.SegmentFlagRecycled).And.EqualTo(1u), "flags at payload bytes 12-15");
        Assert.That(frame.AsSpan(0, 8).ToArray(), Is.EqualTo(plain.AsSpan(0, 8).ToArray()), "the header's length word is untagged: a reader learns the flag from it");
        Assert.That(crc, Is.EqualTo(Crc32C.Append(Crc32C.Append(0xDEADBEEF, frame.AsSpan(0, 20)), frame.AsSpan(24))));
    }

    [Test]
    public void ATaggedFrameMixesItsTagIntoTheLengthWordCheckAndTheCrc()
    {
        var tag = FrameTag.ForSegment(0x1_0000_0007, recycled: true);
        Assert.That(tag, Is.EqualTo(new FrameTag(true, 7u)), "the low 32 bits of the sequence");
        byte[] payload = [1, 2, 3];
        var frame = new byte[WalFormat.FrameSize(payload.Length)];
        payload.CopyTo(frame.AsSpan(24));
        uint crc = WalFormat.WriteFrameHeader(frame, 7, 0x1234, payload, 0xCAFEF00D, syncedOffset: 4096, tag);
        ulong word = BinaryPrimitives.ReadUInt64LittleEndian(frame);
        Assert.That(WalFormat.TryDecodeLengthWord(word, tag, out int length, out byte type), Is.True);
        Assert.That((length, type), Is.EqualTo((3, (byte)7)));
        Assert.That(WalFormat.TryDecodeLengthWord(word, out _, out _), Is.False, "an untagged reader sees no frame");
        Assert.That(WalFormat.TryDecodeLengthWord(word, FrameTag.ForSegment(8, recycled: true), out _, out _), Is.False, "nor does another life's");
        byte[] tagBytes = [7, 0, 0, 0];
        Assert.That(crc, Is.EqualTo(Crc32C.Append(Crc32C.Append(Crc32C.Append(0xCAFEF00D, tagBytes), frame.AsSpan(0, 20)), payload)), "crc = continue(previous, tag ++ bytes 0-19 ++ payload)");
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(20)), Is.EqualTo(crc));
        uint state = System.Numerics.BitOperations.Crc32C(System.Numerics.BitOperations.Crc32C(0xFFFF_FFFFu, 7u), word & 0xFFFF_FFFF_FFFFUL);
        Assert.That((ushort)(word >> 48), Is.EqualTo((ushort)(state ^ (state >> 16))), "check = fold16(CRC32C-update(CRC32C-update(0xFFFFFFFF, tag), bits 0-47))");
    }

    [Test]
    public void EverySingleBitFlipOfATaggedLengthWordIsDetected()
    {
        var random = new Random(43);
        for (int i = 0; i < 200; i++)
        {
            var tag = FrameTag.ForSegment(random.NextInt64(1, long.MaxValue), recycled: true);
            ulong word = WalFormat.EncodeLengthWord(random.Next(0, 1 << 24), (byte)random.Next(0, 256), tag);
            for (int bit = 0; bit < 64; bit++)
            {
                Assert.That(WalFormat.TryDecodeLengthWord(word ^ (1UL << bit), tag, out _, out _), Is.False, $"word {word:x16}, tag {tag.Value:x8}, bit {bit}");
            }
        }
    }

    [Test]
    public void SegmentNamesAreFixedWidthLowercaseHex()
    {
        Assert.That(WalFormat.SegmentFileName(1, 0xAB), Is.EqualTo("0000000000000001-00000000000000ab.wal"));
        Assert.That(WalFormat.TryParseSegmentFileName("0000000000000001-00000000000000ab.wal", out long sequence, out ulong index), Is.True);
        Assert.That((sequence, index), Is.EqualTo((1L, 0xABUL)));
        Assert.That(WalFormat.TryParseSegmentFileName("0000000000000001-00000000000000AB.wal", out _, out _), Is.False);
        Assert.That(WalFormat.TryParseSegmentFileName("0000000000000001-00000000000000ab.wal.tmp", out _, out _), Is.False);
        Assert.That(WalFormat.TryParseSegmentFileName("wal.lock", out _, out _), Is.False);
    }
}
