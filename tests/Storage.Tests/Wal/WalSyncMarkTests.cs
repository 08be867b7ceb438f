using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Storage.Tests.Wal;

/// <summary>
/// The sync mark: a clean close (and an open that recovered unproven records) appends one frame
/// that proves every record before it durable. It is the log's own frame, never a record.
/// </summary>
public sealed class WalSyncMarkTests
{
    [Test]
    public async Task ACleanCloseAppendsOneMarkThatReadersSkip()
    {
        var fs = new FaultInjectingFileSystem(80);
        var options = WalTestKit.SmallSegments(segmentSizeBytes: 64 * 1024);
        var appended = new List<StoredRecord>();
        WalPosition end;
        await using (var log = WriteAheadLog.Open(fs, WalTestKit.Directory, options))
        {
            for (ulong i = 1; i <= 5; i++)
            {
                var payload = new byte[100 + (int)i];
                appended.Add(new StoredRecord(1, i, payload, await log.AppendAsync(1, payload, i, sync: i == 5)));
            }

            end = log.EndPosition;
        }

        WalPosition afterMark = new(end.Sequence, end.Offset + WalFormat.SyncMarkFrameSizeBytes);
        await using (var log = WriteAheadLog.Open(fs, WalTestKit.Directory, options))
        {
            Assert.That(log.EndPosition, Is.EqualTo(afterMark), "one mark after the records");
            Assert.That(log.TailRepair, Is.Null);
            WalRoundTripTests.AssertSameRecords(WalTestKit.ReadAll(log), appended);
        }

        await using (var log = WriteAheadLog.Open(fs, WalTestKit.Directory, options))
        {
            Assert.That(log.EndPosition, Is.EqualTo(afterMark), "a close with nothing appended adds no mark");
            var payload = new byte[7];
            var position = await log.AppendAsync(2, payload, 6);
            Assert.That(position, Is.EqualTo(afterMark), "records continue after the mark");
            appended.Add(new StoredRecord(2, 6, payload, position));
        }

        await using var reopened = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
        WalRoundTripTests.AssertSameRecords(WalTestKit.ReadAll(reopened), appended);
    }

    [Test]
    public async Task TheLastRecordOfACleanlyClosedLogIsProvenDurable()
    {
        // Without the mark, damage to the last record (no later frame claims it) would be cut as torn.
        var fs = new FaultInjectingFileSystem(81);
        var options = WalTestKit.SmallSegments(segmentSizeBytes: 64 * 1024, maxRecordSizeBytes: 4096);
        var random = new Random(81);
        WalPosition last;
        byte[] payload = WalTestKit.PayloadWithZeroPiece(random, 1500, 1500);
        string segment;
        await using (var log = WriteAheadLog.Open(fs, WalTestKit.Directory, options))
        {
            await log.AppendAsync(1, WalTestKit.Payload(random, 10, 10), 1);
            last = await log.AppendAsync(1, payload, 2);
            segment = log.SegmentPaths[^1];
        }

        // A flip in a non-zero byte of the payload: a crc mismatch in a frame with a zero piece.
        int nonZero = Array.FindIndex(payload, b => b != 0);
        fs.FlipBit(segment, last.Offset + WalFormat.FrameHeaderSizeBytes + nonZero, 4);

        var error = Assert.Throws<CorruptionException>(() => WriteAheadLog.Open(fs, WalTestKit.Directory, options));
        Assert.That((error!.Path, error.Offset), Is.EqualTo((segment, last.Offset)));
        Assert.That(error.Reason, Does.Contain("appended after a flush"));
    }
}
