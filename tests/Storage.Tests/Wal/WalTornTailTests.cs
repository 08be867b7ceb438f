using EmbeddedRaft.Storage.IO;
using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Storage.Tests.Wal;

/// <summary>Open cuts a torn tail of the last segment, keeps the cut bytes, and the log goes on.</summary>
public sealed class WalTornTailTests
{
    [Test]
    public async Task ALostSectorInTheLastRecordIsCutAndKeptInASideFile()
    {
        var fs = new FaultInjectingFileSystem(30);
        var options = WalTestKit.SmallSegments(segmentSizeBytes: 64 * 1024);
        var random = new Random(30);
        var appended = new List<StoredRecord>();
        string segment;
        await using (var log = WriteAheadLog.Open(fs, WalTestKit.Directory, options))
        {
            for (ulong i = 1; i <= 10; i++)
            {
                var payload = WalTestKit.Payload(random, 1000, 1000);
                appended.Add(new StoredRecord(1, i, payload, await log.AppendAsync(1, payload, i)));
            }

            segment = log.SegmentPaths[^1];
        }

        // The disk as a power cut leaves it when the last record's write was never flushed: one
        // whole sector of that frame is lost, and the sync mark the clean close wrote after it
        // never reached the disk. (Had the mark survived, it would prove the record durable and
        // Open would refuse the damage as corruption: WalDurableDamageTests.)
        long frame = appended[^1].Position.Offset;
        long sector = (frame + 24 + 511) / 512 * 512;
        OverwriteDurably(fs, segment, sector, new byte[512]);
        long markOffset = frame + WalFormat.FrameSize(1000);
        OverwriteDurably(fs, segment, markOffset, new byte[WalFormat.SyncMarkFrameSizeBytes]);

        await using (var log = WriteAheadLog.Open(fs, WalTestKit.Directory, options))
        {
            var repair = log.TailRepair;
            Assert.That(repair, Is.Not.Null);
            Assert.That(repair!.SegmentPath, Is.EqualTo(segment));
            Assert.That(repair.Offset, Is.EqualTo(frame));
            Assert.That(repair.LengthBytes, Is.EqualTo(WalFormat.FrameSize(1000) - 0));
            Assert.That(fs.GetLength(repair.SideFilePath), Is.EqualTo(repair.LengthBytes));
            WalRoundTripTests.AssertSameRecords(WalTestKit.ReadAll(log), appended[..^1]);

            var payload = WalTestKit.Payload(random, 10, 10);
            var position = await log.AppendAsync(3, payload, 10);
            // Open proved the records it kept durable with a sync mark where the torn record started.
            Assert.That(position.Offset, Is.EqualTo(frame + WalFormat.SyncMarkFrameSizeBytes), "the log continues where the torn record started, after a sync mark");
            appended[^1] = new StoredRecord(3, 10, payload, position);
        }

        await using var reopened = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
        Assert.That(reopened.TailRepair, Is.Null);
        WalRoundTripTests.AssertSameRecords(WalTestKit.ReadAll(reopened), appended);
        Assert.That(fs.AllFiles().Count(f => f.EndsWith(".torn", StringComparison.Ordinal)), Is.EqualTo(1), "the side file is never deleted");
    }

    [Test]
    public async Task BytesThatALaterWriteLeftPastAMissingRecordAreCutToo()
    {
        var fs = new FaultInjectingFileSystem(31);
        var options = WalTestKit.SmallSegments(segmentSizeBytes: 64 * 1024);
        WalPosition end;
        string segment;
        await using (var log = WriteAheadLog.Open(fs, WalTestKit.Directory, options))
        {
            for (ulong i = 1; i <= 5; i++)
            {
                await log.AppendAsync(1, new byte[100], i);
            }

            end = log.EndPosition;
            segment = log.SegmentPaths[^1];
        }

        // The length word at the end is zero, but a later write's sector reached the disk.
        OverwriteDurably(fs, segment, end.Offset + 1024, [1, 2, 3, 4, 5, 6, 7, 8]);

        await using var reopened = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
        // The clean close appended a sync mark at the end; the cut starts after it.
        long logEnd = end.Offset + WalFormat.SyncMarkFrameSizeBytes;
        Assert.That(reopened.TailRepair, Is.Not.Null);
        Assert.That(reopened.TailRepair!.Offset, Is.EqualTo(logEnd));
        Assert.That(reopened.TailRepair.LengthBytes, Is.EqualTo(end.Offset + 1024 + 8 - logEnd));
        Assert.That(WalTestKit.ReadAll(reopened), Has.Count.EqualTo(5));
        Assert.That(reopened.EndPosition, Is.EqualTo(new WalPosition(end.Sequence, logEnd)));
    }

    [Test]
    public async Task UnsyncedRecordsLostInACrashLeaveAPrefixThatStillHoldsEverySyncedRecord()
    {
        var fs = new FaultInjectingFileSystem(32);
        var options = WalTestKit.SmallSegments(segmentSizeBytes: 64 * 1024);
        var log = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
        for (ulong i = 1; i <= 20; i++)
        {
            await log.AppendAsync(1, new byte[700], i, sync: i <= 10);
        }

        // The next mutating operation is the writer's write of a full buffer of unsynced records;
        // the disk crashes right after it, before any flush.
        fs.CrashAfterOperation = fs.OperationCount + 1;
        try
        {
            for (ulong i = 21; i <= 40; i++)
            {
                await log.AppendAsync(1, new byte[700], i, sync: false);
            }

            await log.SyncAsync();
            Assert.Fail("the disk should have crashed");
        }
        catch (Exception e) when (e is SimulatedCrashException or IOException)
        {
            Assert.That(fs.IsCrashed, Is.True);
        }

        await log.DisposeAsync();
        fs.Restart();
        await using var reopened = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
        var indexes = WalTestKit.ReadAll(reopened).Select(r => r.Index).ToList();
        Assert.That(indexes, Is.EqualTo(Enumerable.Range(1, indexes.Count).Select(i => (ulong)i)), "a prefix");
        Assert.That(indexes, Has.Count.GreaterThanOrEqualTo(10), "every synced record");
    }

    [Test]
    public async Task ARepairIsReportedToTheCallerAndLoggedAsAWarning()
    {
        var fs = new FaultInjectingFileSystem(33);
        var logger = new RecordingLogger();
        var options = new WalOptions(segmentSizeBytes: 64 * 1024, maxRecordSizeBytes: 1024, writeBufferSizeBytes: 4096, logger: logger);
        WalPosition end;
        string segment;
        await using (var log = WriteAheadLog.Open(fs, WalTestKit.Directory, options))
        {
            for (ulong i = 1; i <= 5; i++)
            {
                await log.AppendAsync(1, new byte[100], i);
            }

            end = log.EndPosition;
            segment = log.SegmentPaths[^1];
        }

        // Bytes a lost write left past the end of the log (after the close's sync mark).
        long logEnd = end.Offset + WalFormat.SyncMarkFrameSizeBytes;
        OverwriteDurably(fs, segment, logEnd + 512, [9, 9, 9, 9, 9, 9, 9, 9]);
        Assert.That(logger.Entries, Is.Empty, "a clean open logs nothing");

        await using var reopened = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
        var repair = reopened.TailRepair!;
        Assert.That((repair.SegmentPath, repair.Offset, repair.LengthBytes), Is.EqualTo((segment, logEnd, 512 + 8L)));
        Assert.That(repair.ProvenDurableOffset, Is.EqualTo(end.Offset), "the sync mark proved every record durable");
        Assert.That(fs.FileExists(repair.SideFilePath), Is.True);
        var warning = logger.Entries.Single();
        Assert.That(warning.Level, Is.EqualTo(LogLevel.Warning));
        Assert.That(warning.Message, Does.Contain(segment).And.Contain(repair.SideFilePath).And.Contain(logEnd.ToString(System.Globalization.CultureInfo.InvariantCulture)));
    }

    internal static void OverwriteDurably(FaultInjectingFileSystem fs, string path, long offset, byte[] bytes)
    {
        using var file = fs.Open(path, FileOpenMode.OpenExisting);
        file.Write(offset, bytes);
        file.Flush();
    }
}
