using EmbeddedRaft.Mvcc.Tests.Watch;
using EmbeddedRaft.Mvcc.Watch;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Images.ImageTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Images;

/// <summary>
/// Watches live through an in-place restore, as a lagging member's watches live through installing
/// the leader's snapshot (etcd's restore moves every watcher to the unsynced group): a watch whose
/// next revision is still in the new history catches up from it — exactly the events the image's
/// history holds after what it had, then live writes — and one whose next revision the image has
/// compacted ends with the compacted error carrying the new compact revision.
/// </summary>
public sealed class ImageRestoreWatchTests
{
    private static readonly WatchRequest s_everything = Everything(0);

    private static WatchRequest Everything(long start) => new() { Key = new byte[] { 0 }, RangeEnd = new byte[] { 0 }, StartRevision = start };

    [TestCaseSource(typeof(ImageTestSupport), nameof(Seeds))]
    public async Task AWatchCatchesUpFromTheRestoredHistoryThenGoesOnLive(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with IMAGE_SEED={seed}");
        var random = new Random(seed);
        var clock = Leases.LeaseTestSupport.Clock();
        var fs = new FaultInjectingFileSystem(seed);

        // The target lags the source: it holds the source's history up to some point (as a member that fell behind).
        var options = Options(clock) with { Watch = new WatchOptions { TimeProvider = clock, MaxBufferedEvents = 4 } };
        await using var source = MvccStore.Open(fs, SourceDirectory, options);
        await using var target = MvccStore.Open(fs, TargetDirectory, options);
        // (No compaction yet: the watch behind starts below the lagging revision and must find history there.)
        ulong next = await WriteAsync(source, random, 40, 1, "early", compactions: false);

        // More single puts than one history read takes (HistoryReader.MaxEventsPerRead): the watch
        // behind, started before them, is still reading the old history after its first response.
        // Since session 24 a catch-up reads up to 256 events whatever MaxBufferedEvents is; this
        // watch, started 5 revisions back as before, read them all at once and the restore below
        // no longer met a watch in the middle of its catch-up (the premise check failed every seed).
        for (int i = 0; i < HistoryReader.MaxEventsPerRead + 20; i++, next++)
        {
            await source.PutAsync(new PutRequest { Key = B($"k{i % 12:D2}"), Value = B($"bulk{i}") }, next);
        }

        await target.RestoreImageAsync(new MemoryStream((await ImageBytesAsync(source)).Bytes));
        long lagging = target.Revision;

        // Watches on the target: one live (synced), one catching up on the old history (unsynced), one with a key filter.
        // (Watch opens the watch now; WatchAsync would open it at the first MoveNextAsync.)
        using var liveStream = target.Watch(s_everything);
        using var behindStream = target.Watch(Everything(Math.Max(target.CompactRevision + 1, lagging - HistoryReader.MaxEventsPerRead - 10)));
        using var oneKeyStream = target.Watch(WatchTestSupport.Key("k03"));
        await using var live = liveStream.GetAsyncEnumerator();
        await using var behind = behindStream.GetAsyncEnumerator();
        await using var oneKey = oneKeyStream.GetAsyncEnumerator();
        var firstBehind = behind.Next("the first response of the watch behind");
        Assert.That(firstBehind.Events[^1].Kv.ModRevision, Is.LessThan(lagging), "premise: after its first response the watch behind is still reading the old history when the image is restored");

        next = await WriteAsync(source, random, 60, next, "late", compactions: false);
        long restoredRevision = source.Revision;
        Assert.That(source.CompactRevision, Is.LessThan(lagging + 1), "precondition: the source's compactions left the lagging revision readable");
        var expected = await EventsAsync(source, lagging + 1, restoredRevision, s_everything);
        var expectedOneKey = expected.Where(e => ImageTestSupport.S(e.Kv.Key) == "k03").ToList();
        await target.RestoreImageAsync(new MemoryStream((await ImageBytesAsync(source)).Bytes));

        // A write after the restore reaches every watch live.
        await target.PutAsync(new PutRequest { Key = B("k03"), Value = B("after") }, next);
        var after = target.Range(new RangeRequest { Key = B("k03") }).Kvs[0];
        Assert.That(after.ModRevision, Is.EqualTo(restoredRevision + 1));

        var fromLive = live.EventsThrough(restoredRevision + 1, "the live watch");
        Assert.That(fromLive.Select(WatchTestSupport.Show), Is.EqualTo(expected.Select(WatchTestSupport.Show).Append("put k03=after@" + (restoredRevision + 1))), "the live watch: the image's events after its revision, then the new write");
        var fromOneKey = oneKey.EventsThrough(restoredRevision + 1, "the one-key watch");
        Assert.That(fromOneKey.Select(WatchTestSupport.Show), Is.EqualTo(expectedOneKey.Select(WatchTestSupport.Show).Append("put k03=after@" + (restoredRevision + 1))), "the one-key watch");
        var fromBehind = behind.EventsThrough(restoredRevision + 1, "the watch behind");
        Assert.That(fromBehind.Select(e => e.Kv.ModRevision), Is.Ordered, "the watch behind: in revision order");
        Assert.That(fromBehind.Select(WatchTestSupport.Show), Is.Unique, "the watch behind: no event twice");
        Assert.That(fromBehind.Where(e => e.Kv.ModRevision > lagging).Select(WatchTestSupport.Show), Is.EqualTo(expected.Select(WatchTestSupport.Show).Append("put k03=after@" + (restoredRevision + 1))), "the watch behind: the new history after the lagging revision");
    }

    [Test]
    public async Task AWatchWhoseNextRevisionTheImageCompactedEndsWithTheCompactRevision()
    {
        var random = new Random(5);
        var clock = Leases.LeaseTestSupport.Clock();
        var fs = new FaultInjectingFileSystem(5);
        await using var source = MvccStore.Open(fs, SourceDirectory, Options(clock));
        await using var target = MvccStore.Open(fs, TargetDirectory, Options(clock));
        ulong next = await WriteAsync(source, random, 30, 1, "early");
        await target.RestoreImageAsync(new MemoryStream((await ImageBytesAsync(source)).Bytes));
        using var stream = target.Watch(s_everything);
        await using var watch = stream.GetAsyncEnumerator();
        var pending = watch.MoveNextAsync().AsTask(); // waiting for the next event, as a real consumer would be

        next = await WriteAsync(source, random, 30, next, "late");
        long compactAt = source.Revision - 1;
        await source.CompactAsync(compactAt, physical: true, next);
        await target.RestoreImageAsync(new MemoryStream((await ImageBytesAsync(source)).Bytes));

        var ended = Assert.Throws<AggregateException>(() => pending.ResultOrFail("the watch's end"))!;
        var error = ended.InnerException as RevisionCompactedException;
        Assert.That(error, Is.Not.Null, $"the watch ends with the compacted error, not {ended.InnerException}");
        Assert.That(error!.CompactRevision, Is.EqualTo(compactAt), "the error says from where to read again");

        // A watch opened now, from the new compact revision + 1, works on the new history.
        await using var again = target.WatchAsync(Everything(compactAt + 1)).GetAsyncEnumerator();
        var events = again.EventsThrough(source.Revision, "a watch from after the compaction");
        Assert.That(events.Select(WatchTestSupport.Show), Is.EqualTo((await EventsAsync(source, compactAt + 1, source.Revision, s_everything)).Select(WatchTestSupport.Show)));
    }

    /// <summary>The events of <paramref name="request"/> in revisions [from, through] of <paramref name="store"/>'s history, read by a watch.</summary>
    private static async Task<List<WatchEvent>> EventsAsync(MvccStore store, long from, long through, WatchRequest request)
    {
        if (from > through)
        {
            return [];
        }

        await using var watch = store.WatchAsync(new WatchRequest { Key = request.Key, RangeEnd = request.RangeEnd, StartRevision = from }).GetAsyncEnumerator();
        return watch.EventsThrough(through, "the reference watch");
    }
}
