using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Storage.Tests.Wal;

public sealed class WalRoundTripTests
{
    [Test]
    public async Task RecordsRoundTripInOrderAcrossManySegments()
    {
        var fs = new FaultInjectingFileSystem(1);
        var random = new Random(1);
        var appended = new List<StoredRecord>();
        await using (var log = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments()))
        {
            for (int i = 1; i <= 300; i++)
            {
                var payload = WalTestKit.Payload(random, 0, 700);
                byte type = (byte)random.Next(1, 256);
                var position = await log.AppendAsync(type, payload, index: (ulong)i, sync: i % 7 == 0);
                appended.Add(new StoredRecord(type, (ulong)i, payload, position));
            }

            await log.SyncAsync();
            Assert.That(log.SegmentPaths, Has.Count.GreaterThan(20));
            AssertSameRecords(WalTestKit.ReadAll(log), appended);
        }

        await using var reopened = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments());
        Assert.That(reopened.TailRepair, Is.Null);
        AssertSameRecords(WalTestKit.ReadAll(reopened), appended);
    }

    [Test]
    public async Task SegmentsAreNamedBySequenceAndTheIndexOfTheirFirstRecord()
    {
        var fs = new FaultInjectingFileSystem(2);
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments());
        for (int i = 1; i <= 40; i++)
        {
            await log.AppendAsync(1, new byte[500], index: (ulong)i);
        }

        var names = log.SegmentPaths.Select(Path.GetFileName).ToList();
        Assert.That(names[0], Is.EqualTo("0000000000000000-0000000000000000.wal"));
        using var reader = log.ReadFrom(0);
        var firstIndexOfSegment = new Dictionary<long, ulong>();
        while (reader.TryReadNext(out var record))
        {
            firstIndexOfSegment.TryAdd(record.Position.Sequence, record.Index);
        }

        for (int sequence = 1; sequence < names.Count; sequence++)
        {
            Assert.That(names[sequence], Is.EqualTo(WalFormat.SegmentFileName(sequence, firstIndexOfSegment[sequence])));
        }

        Assert.That(fs.GetLength(log.SegmentPaths[^1]), Is.EqualTo(4096), "segments are preallocated to their full size");
    }

    [Test]
    public async Task AnEmptyPayloadAndTheLargestAllowedPayloadRoundTrip()
    {
        var fs = new FaultInjectingFileSystem(3);
        var options = WalTestKit.SmallSegments();
        var largest = WalTestKit.Payload(new Random(3), options.MaxRecordSizeBytes, options.MaxRecordSizeBytes);
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
        await log.AppendAsync(9, ReadOnlyMemory<byte>.Empty);
        await log.AppendAsync(10, largest);
        Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await log.AppendAsync(10, new byte[options.MaxRecordSizeBytes + 1]));
        Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await log.AppendAsync(0, new byte[1]));

        var records = WalTestKit.ReadAll(log);
        Assert.That(records.Select(r => r.Type), Is.EqualTo(new byte[] { 9, 10 }));
        Assert.That(records[0].Payload, Is.Empty);
        Assert.That(records[1].Payload, Is.EqualTo(largest));
    }

    [Test]
    public async Task UnsyncedAppendsBecomeDurableWithSync()
    {
        var fs = new FaultInjectingFileSystem(4);
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments(segmentSizeBytes: 64 * 1024));
        var last = await log.AppendAsync(1, new byte[100], sync: false);
        Assert.That(log.DurablePosition, Is.LessThanOrEqualTo(last));
        await log.SyncAsync();
        Assert.That(log.DurablePosition, Is.EqualTo(log.EndPosition));
        Assert.That(log.DurablePosition, Is.GreaterThan(last));
    }

    internal static void AssertSameRecords(List<StoredRecord> actual, List<StoredRecord> expected)
    {
        Assert.That(actual, Has.Count.EqualTo(expected.Count));
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.That(actual[i].SameContent(expected[i]), Is.True, $"record {i} differs");
            Assert.That(actual[i].Position, Is.EqualTo(expected[i].Position), $"record {i} position");
        }
    }
}
