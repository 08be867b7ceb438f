using System.Globalization;
using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Storage.Tests.Wal;

/// <summary>
/// Issue 11: deleting the last segment must not silently shorten the log. A finished segment's
/// trailer names its successor once that successor durably exists, so Open refuses a log whose
/// last segment's trailer names a segment that is not there, naming the missing file.
/// </summary>
public sealed class WalMissingSegmentTests
{
    private static readonly WalOptions s_options = WalTestKit.SmallSegments();

    [Test]
    public async Task DeletingTheLastSegmentIsRefusedNamingTheMissingFile()
    {
        var (fs, segments) = await WriteLogAsync(60);
        Assume.That(segments, Has.Count.GreaterThanOrEqualTo(3));
        fs.DeleteFile(segments[^1]);
        fs.SyncDirectory(WalTestKit.Directory);

        var error = Assert.Throws<CorruptionException>(() => WriteAheadLog.Open(fs, WalTestKit.Directory, s_options));
        Assert.That(error!.Path, Is.EqualTo(segments[^1]), "names the missing segment, first index included");
        Assert.That(error.Reason, Does.Contain(segments[^2]), "and the segment whose trailer recorded it");
        Assert.That(fs.AllFiles().Any(f => f.EndsWith(WalFormat.TornSuffix, StringComparison.Ordinal)), Is.False, "nothing is repaired");
    }

    [Test]
    public async Task DeletingTheLastTwoSegmentsNamesTheFirstMissingOne()
    {
        var (fs, segments) = await WriteLogAsync(61);
        Assume.That(segments, Has.Count.GreaterThanOrEqualTo(3));
        fs.DeleteFile(segments[^1]);
        fs.DeleteFile(segments[^2]);
        fs.SyncDirectory(WalTestKit.Directory);

        var error = Assert.Throws<CorruptionException>(() => WriteAheadLog.Open(fs, WalTestKit.Directory, s_options));
        Assert.That(error!.Path, Is.EqualTo(segments[^2]));
    }

    [Test]
    public async Task ACrashBeforeTheTrailerIsWrittenLeavesBothSegmentsAndEveryRecord()
    {
        // The trailer is written only after the next segment is durably created; a failure (or a
        // crash) between the two leaves a finished segment without a trailer and its successor.
        var fs = new FaultInjectingFileSystem(62);
        var random = new Random(62);
        var acknowledged = new List<StoredRecord>();
        var log = WriteAheadLog.Open(fs, WalTestKit.Directory, s_options);
        fs.FailWhen = op => op.Kind == FaultOperationKind.Write && op.Offset == s_options.SegmentSizeBytes - WalFormat.SegmentTrailerSizeBytes;
        try
        {
            for (ulong i = 1; i <= 40; i++)
            {
                var payload = WalTestKit.Payload(random, 100, 900);
                acknowledged.Add(new StoredRecord(1, i, payload, await log.AppendAsync(1, payload, i)));
            }

            Assert.Fail("the trailer write should have failed");
        }
        catch (IOException)
        {
        }

        fs.FailWhen = null;
        await log.DisposeAsync();
        fs.Restart();
        var segments = fs.AllFiles().Where(f => f.EndsWith(WalFormat.SegmentExtension, StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
        Assert.That(segments, Has.Count.EqualTo(2), "the finished segment and its successor");

        await using var reopened = WriteAheadLog.Open(fs, WalTestKit.Directory, s_options);
        WalRoundTripTests.AssertSameRecords(WalTestKit.ReadAll(reopened), acknowledged);
    }

    [Test]
    public async Task AFlippedBitInTheLastSegmentsTrailerIsRefused()
    {
        var (fs, segments) = await WriteLogAsync(63);
        fs.DeleteFile(segments[^1]);
        fs.SyncDirectory(WalTestKit.Directory);
        long trailer = s_options.SegmentSizeBytes - WalFormat.SegmentTrailerSizeBytes;
        fs.FlipBit(segments[^2], trailer + 3, 2);

        var error = Assert.Throws<CorruptionException>(() => WriteAheadLog.Open(fs, WalTestKit.Directory, s_options));
        Assert.That((error!.Path, error.Offset), Is.EqualTo((segments[^2], trailer)));
        Assert.That(error.Reason, Does.Contain("trailer"));
    }

    private static async Task<(FaultInjectingFileSystem Fs, List<string> Segments)> WriteLogAsync(int seed)
    {
        var fs = new FaultInjectingFileSystem(seed);
        var random = new Random(seed);
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, s_options);
        for (ulong i = 1; i <= 40; i++)
        {
            await log.AppendAsync(1, WalTestKit.Payload(random, 100, 900), i);
        }

        var segments = log.SegmentPaths.ToList();
        Assert.That(segments.Select(Path.GetFileName), Is.Ordered.Using((IComparer<string?>)StringComparer.Ordinal));
        Assert.That(Path.GetFileName(segments[0]), Does.StartWith(0L.ToString("x16", CultureInfo.InvariantCulture)));
        return (fs, segments);
    }
}
