using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Storage.Tests.Wal;

public sealed class WalReleaseTests
{
    [Test]
    public async Task SegmentsWhollyBeforeAnIndexAreDeletedAndTheRestStillReads()
    {
        var fs = new FaultInjectingFileSystem(60);
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments());
        for (ulong i = 1; i <= 100; i++)
        {
            await log.AppendAsync(1, new byte[400], i);
        }

        var before = log.SegmentPaths;
        int holding70 = WalTestKit.ReadAll(log).Where(r => r.Index <= 70).Select(r => (int)r.Position.Sequence).Max();
        int released = log.ReleaseBefore(70);

        Assert.That(released, Is.EqualTo(holding70));
        Assert.That(log.SegmentPaths, Is.EqualTo(before.Skip(released)));
        Assert.That(before.Take(released).Any(fs.FileExists), Is.False);
        var remaining = WalTestKit.ReadAll(log, fromIndex: 70);
        Assert.That(remaining.Select(r => r.Index), Does.Contain(70UL));
        Assert.That(remaining[^1].Index, Is.EqualTo(100UL));
    }

    [Test]
    public async Task TheSegmentInUseIsNeverReleased()
    {
        var fs = new FaultInjectingFileSystem(61);
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments());
        for (ulong i = 1; i <= 30; i++)
        {
            await log.AppendAsync(1, new byte[400], i);
        }

        log.ReleaseBefore(ulong.MaxValue);
        Assert.That(log.SegmentPaths, Has.Count.EqualTo(1));
        await log.AppendAsync(1, new byte[400], 31);
        Assert.That(WalTestKit.ReadAll(log)[^1].Index, Is.EqualTo(31UL));
    }

    [Test]
    public async Task ALogReopensAfterItsOldSegmentsWereReleased()
    {
        var fs = new FaultInjectingFileSystem(62);
        await using (var log = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments()))
        {
            for (ulong i = 1; i <= 60; i++)
            {
                await log.AppendAsync(1, new byte[400], i);
            }

            Assert.That(log.ReleaseBefore(40), Is.GreaterThan(0));
        }

        await using var reopened = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments());
        var records = WalTestKit.ReadAll(reopened);
        Assert.That(records[0].Index, Is.LessThanOrEqualTo(40UL));
        Assert.That(records[^1].Index, Is.EqualTo(60UL));
        Assert.That(records.Select(r => r.Index), Is.Ordered);
    }
}
