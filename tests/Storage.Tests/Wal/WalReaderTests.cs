using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Storage.Tests.Wal;

public sealed class WalReaderTests
{
    [Test]
    public async Task AReaderStartsAtTheSegmentThatHoldsTheIndexAndReadsToTheEnd()
    {
        var fs = new FaultInjectingFileSystem(20);
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments());
        for (ulong i = 1; i <= 100; i++)
        {
            await log.AppendAsync(1, new byte[300], i, sync: false);
        }

        await log.SyncAsync();
        var all = WalTestKit.ReadAll(log);
        var middle = all.First(r => r.Index == 50);

        var fromMiddle = WalTestKit.ReadAll(log, fromIndex: 50);
        Assert.That(fromMiddle[0].Position, Is.EqualTo(new WalPosition(middle.Position.Sequence, 64)), "starts at the head of the segment holding index 50");
        Assert.That(fromMiddle[0].Index, Is.LessThanOrEqualTo(50UL));
        Assert.That(fromMiddle.Select(r => r.Index), Is.EqualTo(all.SkipWhile(r => r.Position.Sequence < middle.Position.Sequence).Select(r => r.Index)));
        Assert.That(fromMiddle[^1].Index, Is.EqualTo(100UL));
    }

    [Test]
    public async Task AReaderStartsAtAPositionAnAppendReturned()
    {
        var fs = new FaultInjectingFileSystem(21);
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments());
        var positions = new List<WalPosition>();
        for (ulong i = 1; i <= 60; i++)
        {
            positions.Add(await log.AppendAsync(1, new byte[200], i));
        }

        using var reader = log.ReadFrom(positions[33]);
        var records = WalTestKit.Drain(reader);
        Assert.That(records.Select(r => r.Index), Is.EqualTo(Enumerable.Range(34, 27).Select(i => (ulong)i)));
    }

    [Test]
    public async Task AReaderSeesOnlyWhatWasWrittenWhenItOpened()
    {
        var fs = new FaultInjectingFileSystem(22);
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments());
        for (ulong i = 1; i <= 10; i++)
        {
            await log.AppendAsync(1, new byte[300], i);
        }

        using var reader = log.ReadFrom(0);
        for (ulong i = 11; i <= 40; i++)
        {
            await log.AppendAsync(1, new byte[300], i);
        }

        Assert.That(WalTestKit.Drain(reader).Select(r => r.Index), Is.EqualTo(Enumerable.Range(1, 10).Select(i => (ulong)i)));
    }

    [Test]
    public async Task AReaderHoldsOneBufferHoweverLongTheLog()
    {
        var fs = new FaultInjectingFileSystem(23);
        var options = new WalOptions { SegmentSizeBytes = 256 * 1024, MaxRecordSizeBytes = 4096 };
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
        var payload = new byte[4000];
        for (ulong i = 1; i <= 2000; i++)
        {
            await log.AppendAsync(1, payload, i, sync: false);
        }

        await log.SyncAsync();
        using var reader = log.ReadFrom(0);
        Assert.That(reader.TryReadNext(out _), Is.True); // warm up: opens the first segment and its buffer
        long before = GC.GetAllocatedBytesForCurrentThread();
        int count = 1;
        while (reader.TryReadNext(out _))
        {
            count++;
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(count, Is.EqualTo(2000));
        // ~8 MB of log read through a handful of 256 KiB segments: only per-segment bookkeeping is allocated, never the data.
        Assert.That(allocated, Is.LessThan(64 * 1024), $"allocated {allocated} bytes reading {count} records");
    }
}
