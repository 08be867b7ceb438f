using System.Buffers.Binary;
using EmbeddedRaft.Storage.IO;
using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Storage.Tests.Wal;

/// <summary>
/// A log written in format version 2 (every segment written over zeros, no flags) opens, reads and
/// appends under version 3, and its next segment is version 3; a version this build does not know
/// is refused as unsupported, naming it.
/// </summary>
public sealed class WalFormatVersionTests
{
    private static readonly string FirstSegment = Path.Combine(WalTestKit.Directory, WalFormat.SegmentFileName(0, 0));

    [Test]
    public async Task ALogInFormatVersionTwoOpensReadsAndAppendsAndItsNextSegmentIsVersionThree()
    {
        var fs = new FaultInjectingFileSystem(77);
        WriteSegmentByHand(fs, version: 2, records: 3);
        var options = WalTestKit.SmallSegments() with { Threading = WalThreading.CallerThread };
        await using (var log = WriteAheadLog.Open(fs, WalTestKit.Directory, options))
        {
            Assert.That(log.TailRepair, Is.Null);
            var records = WalTestKit.ReadAll(log);
            Assert.That(records.Select(r => r.Index), Is.EqualTo(new ulong[] { 1, 2, 3 }));
            Assert.That(records.Select(r => r.Payload[0]), Is.EqualTo(new byte[] { 1, 2, 3 }));
            ulong next = 4;
            while (log.SegmentPaths.Count == 1)
            {
                await log.AppendAsync(1, new byte[300], next++);
            }

            Assert.That(HeaderVersion(fs, log.SegmentPaths[0]), Is.EqualTo(2u), "the version-2 segment stays version 2, appended to in its own encoding");
            Assert.That(HeaderVersion(fs, log.SegmentPaths[1]), Is.EqualTo(WalFormat.FormatVersion), "the next segment is written in this build's version");
        }

        await using var reopened = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
        var all = WalTestKit.ReadAll(reopened);
        Assert.That(all.Select(r => r.Index), Is.EqualTo(Enumerable.Range(1, all.Count).Select(i => (ulong)i)), "every record, across both versions, in order");
    }

    [Test]
    public void ASegmentInAVersionThisBuildDoesNotKnowIsRefusedAsUnsupportedNamingIt()
    {
        var fs = new FaultInjectingFileSystem(78);
        WriteSegmentByHand(fs, version: WalFormat.FormatVersion + 1, records: 0);
        var error = Assert.Throws<NotSupportedException>(() => WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments()));
        Assert.That(error!.Message, Does.Contain(FirstSegment).And.Contain($"format version {WalFormat.FormatVersion + 1}"));
    }

    [Test]
    public void AVersionTwoHeaderWithTheRecycledFlagIsCorruption()
    {
        // Version 2's bytes 12-15 were reserved: a flag there is damage, not a recycled segment.
        var fs = new FaultInjectingFileSystem(79);
        WriteSegmentByHand(fs, version: 2, records: 0, flags: WalFormat.SegmentFlagRecycled);
        var error = Assert.Throws<CorruptionException>(() => WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments()));
        Assert.That(error!.Path, Is.EqualTo(FirstSegment));
        Assert.That(error.Message, Does.Contain("unknown flags"));
    }

    /// <summary>
    /// The first segment as a build of <paramref name="version"/> writes it: the header (its crc
    /// recomputed), <paramref name="records"/> untagged records of three bytes (record i holds i)
    /// and a sync mark, preallocated to 4 KiB and durable.
    /// </summary>
    private static void WriteSegmentByHand(FaultInjectingFileSystem fs, uint version, int records, uint flags = 0)
    {
        fs.CreateDirectory(WalTestKit.Directory);
        byte[] header = WalFormat.BuildSegmentHeaderFrame(0, 0, 0, recycled: false, out _);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(WalFormat.FrameHeaderSizeBytes + 8), version);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(WalFormat.FrameHeaderSizeBytes + 12), flags);
        uint crc = Crc32C.Append(Crc32C.Append(0, header.AsSpan(0, 20)), header.AsSpan(WalFormat.FrameHeaderSizeBytes));
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(20), crc);
        var bytes = new List<byte>(header);
        for (int i = 1; i <= records; i++)
        {
            byte[] payload = [(byte)i, (byte)i, (byte)i];
            var frame = new byte[WalFormat.FrameSize(payload.Length)];
            payload.CopyTo(frame.AsSpan(WalFormat.FrameHeaderSizeBytes));
            crc = WalFormat.WriteFrameHeader(frame, 1, (ulong)i, payload, crc, syncedOffset: 0);
            bytes.AddRange(frame);
        }

        if (records > 0)
        {
            bytes.AddRange(WalFormat.BuildSyncMarkFrame(bytes.Count, crc, FrameTag.None, out _));
        }

        using var file = fs.Open(FirstSegment, FileOpenMode.CreateNew);
        file.Write(0, bytes.ToArray());
        file.Preallocate(4096);
        file.Flush();
        fs.SyncDirectory(WalTestKit.Directory);
    }

    private static uint HeaderVersion(FaultInjectingFileSystem fs, string segment)
    {
        using var file = fs.Open(segment, FileOpenMode.ReadOnly);
        var version = new byte[4];
        file.Read(WalFormat.FrameHeaderSizeBytes + 8, version);
        return BinaryPrimitives.ReadUInt32LittleEndian(version);
    }
}
