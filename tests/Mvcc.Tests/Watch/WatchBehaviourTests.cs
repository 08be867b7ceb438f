using EmbeddedRaft.Storage;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using Microsoft.Extensions.Time.Testing;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;
using static EmbeddedRaft.Mvcc.Tests.Watch.WatchTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Watch;

/// <summary>What one watch does, one behaviour per test, in both durability modes where it matters.</summary>
public sealed class WatchBehaviourTests
{
    private static IEnumerable<TestCaseData> Modes() =>
    [
        new TestCaseData(MvccDurability.Synced).SetArgDisplayNames("synced"),
        new TestCaseData(MvccDurability.NoSync).SetArgDisplayNames("no-sync"),
    ];

    [TestCaseSource(nameof(Modes))]
    public async Task AKeyWatchReportsPutsAndDeletesOfThatKeyOnlyWithTheirRevisions(MvccDurability durability)
    {
        await using var store = OpenOn(new FaultInjectingFileSystem(1), new MvccStoreOptions { Durability = durability });
        await using var watch = store.Watch(Key("a"));
        await using var responses = watch.GetAsyncEnumerator();
        store.Put("a", "1");
        store.Put("b", "x");
        store.Put("a", "2");
        store.Delete("a");

        var events = responses.EventsThrough(5, "four writes");
        Assert.That(events.Select(Show), Is.EqualTo(new[] { "put a=1@2", "put a=2@4", "delete a@5" }));
        Assert.That((events[0].Kv.CreateRevision, events[0].Kv.Version, events[1].Kv.CreateRevision, events[1].Kv.Version), Is.EqualTo((2L, 1L, 2L, 2L)));
        var rest = events.Skip(1).ToList();
        Assert.That(rest[1].Kv.CreateRevision, Is.Zero, "a delete event carries only the key and the delete's revision");
    }

    [Test]
    public async Task APrefixWatchAndARangeWatchAndAFromKeyWatchSeeExactlyTheirKeys()
    {
        await using var store = OpenOn(new FaultInjectingFileSystem(2));
        await using var prefix = store.Watch(Prefix("app/")).GetAsyncEnumerator();
        await using var range = store.Watch(new WatchRequest { Key = B("b"), RangeEnd = B("d") }).GetAsyncEnumerator();
        await using var fromKey = store.Watch(new WatchRequest { Key = B("c"), RangeEnd = KeyRange.AllKeysFrom() }).GetAsyncEnumerator();
        foreach (var key in new[] { "a", "app/1", "app0", "b", "c", "d", "app/2", "zz" })
        {
            store.Put(key, "v");
        }

        long last = store.Revision;
        Assert.That(prefix.EventsThrough(last, "prefix").Select(e => S(e.Kv.Key)), Is.EqualTo(new[] { "app/1", "app/2" }));
        Assert.That(range.EventsThrough(last, "range").Select(e => S(e.Kv.Key)), Is.EqualTo(new[] { "b", "c" }));
        Assert.That(fromKey.EventsThrough(last, "from key").Select(e => S(e.Kv.Key)), Is.EqualTo(new[] { "c", "d", "zz" }));
    }

    [Test]
    public async Task AllEventsOfOneTransactionArriveInOneResponseInTheirOrder()
    {
        await using var store = OpenOn(new FaultInjectingFileSystem(3));
        store.Put("k/2", "old");
        await using var watch = store.Watch(Prefix("k/")).GetAsyncEnumerator();
        store.Txn(new TxnRequest
        {
            Success = [RequestOp.Put(new PutRequest { Key = B("k/3"), Value = B("c") }), RequestOp.DeleteRange(new DeleteRangeRequest { Key = B("k/2") }), RequestOp.Put(new PutRequest { Key = B("k/1"), Value = B("a") })],
        });

        var response = watch.Next("the transaction");
        Assert.That(response.Events.Select(Show), Is.EqualTo(new[] { "put k/3=c@3", "delete k/2@3", "put k/1=a@3" }));
        Assert.That(response.Header.Revision, Is.EqualTo(3));
    }

    [Test]
    public async Task FiltersLeaveOutPutsOrDeletes()
    {
        await using var store = OpenOn(new FaultInjectingFileSystem(4));
        await using var onlyPuts = store.Watch(new WatchRequest { Key = B("a"), NoDelete = true }).GetAsyncEnumerator();
        await using var onlyDeletes = store.Watch(new WatchRequest { Key = B("a"), NoPut = true }).GetAsyncEnumerator();
        store.Put("a", "1");
        store.Delete("a");
        store.Put("a", "2");
        Assert.That(onlyPuts.EventsThrough(4, "puts").Select(Show), Is.EqualTo(new[] { "put a=1@2", "put a=2@4" }));
        Assert.That(onlyDeletes.EventsThrough(3, "deletes").Select(Show), Is.EqualTo(new[] { "delete a@3" }));
    }

    [Test]
    public async Task PrevKvGivesEachEventTheKeysVersionBeforeIt()
    {
        await using var store = OpenOn(new FaultInjectingFileSystem(5));
        await using var watch = store.Watch(new WatchRequest { Key = B("a"), PrevKv = true }).GetAsyncEnumerator();
        store.Put("a", "1");
        store.Put("a", "2");
        store.Delete("a");
        var events = watch.EventsThrough(4, "three events");
        Assert.That(events[0].PrevKv, Is.Null, "a put that creates the key has no previous version");
        Assert.That(S(events[1].PrevKv!.Value), Is.EqualTo("1"));
        Assert.That(events[1].PrevKv!.ModRevision, Is.EqualTo(2));
        Assert.That(S(events[2].PrevKv!.Value), Is.EqualTo("2"));
    }

    [TestCaseSource(nameof(Modes))]
    public async Task APastStartRevisionReplaysHistoryThenGoesLive(MvccDurability durability)
    {
        await using var store = OpenOn(new FaultInjectingFileSystem(6), new MvccStoreOptions { Durability = durability });
        store.Put("a", "1");
        store.Put("b", "x");
        store.Put("a", "2");
        await using var watch = store.Watch(Key("a", start: 2)).GetAsyncEnumerator();
        Assert.That(watch.EventsThrough(4, "history").Select(Show), Is.EqualTo(new[] { "put a=1@2", "put a=2@4" }));
        store.Put("a", "3");
        Assert.That(watch.EventsThrough(5, "live").Select(Show), Is.EqualTo(new[] { "put a=3@5" }));
    }

    [Test]
    public async Task AResumedWatchFromTheLastSeenRevisionPlusOneContinuesExactly()
    {
        await using var store = OpenOn(new FaultInjectingFileSystem(7));
        long lastSeen;
        await using (var first = store.Watch(Prefix("k")).GetAsyncEnumerator())
        {
            store.Put("k1", "a");
            store.Put("k2", "b");
            lastSeen = first.Next("first event").Header.Revision;
        }

        store.Put("k3", "c");
        await using var resumed = store.Watch(Prefix("k", start: lastSeen + 1)).GetAsyncEnumerator();
        var events = resumed.EventsThrough(store.Revision, "resumed");
        Assert.That(events.Select(Show), Is.EqualTo(lastSeen == 2 ? new[] { "put k2=b@3", "put k3=c@4" } : new[] { "put k3=c@4" }));
    }

    [Test]
    public async Task AWatchFromACompactedRevisionEndsWithTheCompactRevision()
    {
        await using var store = OpenOn(new FaultInjectingFileSystem(8));
        for (int i = 0; i < 5; i++)
        {
            store.Put("a", $"{i}");
        }

        store.Compact(4);
        await using var watch = store.Watch(Key("a", start: 4)).GetAsyncEnumerator();
        var error = Assert.ThrowsAsync<RevisionCompactedException>(async () => await watch.MoveNextAsync())!;
        Assert.That(error.CompactRevision, Is.EqualTo(4));

        await using var after = store.Watch(Key("a", start: 5)).GetAsyncEnumerator();
        Assert.That(after.EventsThrough(6, "from the compact revision + 1").Select(Show), Is.EqualTo(new[] { "put a=3@5", "put a=4@6" }));
    }

    [Test]
    public async Task AFutureStartRevisionReportsNothingBeforeIt()
    {
        await using var store = OpenOn(new FaultInjectingFileSystem(9));
        await using var watch = store.Watch(Key("a", start: 4)).GetAsyncEnumerator();
        store.Put("a", "1");
        store.Put("a", "2");
        store.Put("a", "3");
        Assert.That(watch.Next("revision 4").Events.Select(Show), Is.EqualTo(new[] { "put a=3@4" }));
    }

    [TestCaseSource(nameof(Modes))]
    public async Task AWatchCreatedAfterAWriteReturnedDoesNotReportIt(MvccDurability durability)
    {
        await using var store = OpenOn(new FaultInjectingFileSystem(10), new MvccStoreOptions { Durability = durability });
        store.Put("a", "before");
        await using var watch = store.Watch(Key("a"));
        Assert.That(watch.StartRevision, Is.EqualTo(3));
        await using var responses = watch.GetAsyncEnumerator();
        store.Put("a", "after");
        Assert.That(responses.Next("the later put").Events.Select(Show), Is.EqualTo(new[] { "put a=after@3" }));
    }

    [Test]
    public async Task ASyncedStoreShowsAWriteToWatchesOnlyOnceItIsOnDisk()
    {
        var fs = new FaultInjectingFileSystem(17);
        await using var store = OpenOn(fs);
        store.Put("a", "1");
        await using var watch = store.Watch(Key("a"));
        await using var responses = watch.GetAsyncEnumerator();
        using var writerInFlush = new ManualResetEventSlim();
        using var releaseWriter = new ManualResetEventSlim();
        int testThread = Environment.CurrentManagedThreadId;
        fs.BeforeEntering = (kind, _) =>
        {
            if (kind == FaultOperationKind.Flush && Environment.CurrentManagedThreadId != testThread)
            {
                writerInFlush.Set();
                releaseWriter.Wait();
            }
        };
        var put = store.PutAsync(new PutRequest { Key = B("a"), Value = B("2") }).AsTask();
        try
        {
            writerInFlush.WaitOrFail("the writer reaching its flush");

            // Readers see revision 3 already; the watch, asked where it is, is still at 2.
            Assert.That(store.Get("a").Header.Revision, Is.EqualTo(3));
            watch.RequestProgress();
            var progress = responses.Next("progress while the write is not yet durable");
            Assert.That((progress.IsProgressNotify, progress.Header.Revision), Is.EqualTo((true, 2L)));
        }
        finally
        {
            releaseWriter.Set();
        }

        put.WaitOrFail("the put");
        fs.BeforeEntering = null;
        Assert.That(responses.Next("the durable put").Events.Select(Show), Is.EqualTo(new[] { "put a=2@3" }));
    }

    [Test]
    public async Task ANoSyncStoreShowsAWriteToWatchesOnceApplied()
    {
        var options = new MvccStoreOptions { Durability = MvccDurability.NoSync, BatchInterval = MvccStoreOptions.MaxBatchInterval };
        var fs = new FaultInjectingFileSystem(18);
        await using var store = OpenOn(fs, options);
        await using var watch = store.Watch(Key("a")).GetAsyncEnumerator();
        long flushes = fs.FlushCount;
        await store.PutAsync(new PutRequest { Key = B("a"), Value = B("1") });
        Assert.That(watch.Next("the applied put").Events.Select(Show), Is.EqualTo(new[] { "put a=1@2" }));
        Assert.That(fs.FlushCount, Is.EqualTo(flushes), "shown before any flush: under Raft the log makes it durable, as in etcd");
    }

    [Test]
    public async Task ARequestedProgressNotificationCarriesTheRevisionEverythingIsDeliveredThrough()
    {
        await using var store = OpenOn(new FaultInjectingFileSystem(11));
        await using var watch = store.Watch(Key("a"));
        await using var responses = watch.GetAsyncEnumerator();
        store.Put("a", "1");
        Assert.That(responses.Next("put").Events, Has.Count.EqualTo(1));
        store.Put("other", "x");
        store.Put("other", "y");
        watch.RequestProgress();
        var progress = responses.Next("progress");
        Assert.That(progress.IsProgressNotify, Is.True);
        Assert.That(progress.Header.Revision, Is.EqualTo(4));
    }

    [Test]
    public async Task PeriodicProgressGoesToIdleWatchesThatAskedForItOnTheClockOfTheOptions()
    {
        var clock = new FakeTimeProvider();
        var options = new MvccStoreOptions { Watch = new WatchOptions { ProgressInterval = TimeSpan.FromSeconds(5), TimeProvider = clock } };
        await using var store = OpenOn(new FaultInjectingFileSystem(12), options);
        await using var notified = store.Watch(new WatchRequest { Key = B("a"), ProgressNotify = true }).GetAsyncEnumerator();
        await using var silent = store.Watch(Key("a"));
        await using var silentResponses = silent.GetAsyncEnumerator();
        store.Put("b", "1");
        var pending = notified.MoveNextAsync().AsTask();
        clock.Advance(TimeSpan.FromSeconds(4));
        Assert.That(pending.IsCompleted, Is.False, "no progress before the interval");
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.That(pending.ResultOrFail("periodic progress"), Is.True);
        Assert.That(notified.Current.IsProgressNotify && notified.Current.Header.Revision == 2, Is.True, notified.Current.ToString());

        // The silent watch got nothing: its first response is the next put.
        store.Put("a", "x");
        Assert.That(silentResponses.Next("put").Events.Select(Show), Is.EqualTo(new[] { "put a=x@3" }));
    }

    [Test]
    public async Task CancellingTheTokenOrLeavingTheLoopReleasesTheWatch()
    {
        await using var store = OpenOn(new FaultInjectingFileSystem(13));
        using var cancel = new CancellationTokenSource();
        var cancelled = Task.Run(async () =>
        {
            await foreach (var _ in store.WatchAsync(Key("a"), cancel.Token))
            {
            }
        });
        var left = Task.Run(async () =>
        {
            await foreach (var response in store.WatchAsync(Key("b")))
            {
                return response.Events.Count;
            }

            return 0;
        });

        while (store.Watches.SyncedCount < 2 && !cancelled.IsCompleted && !left.IsCompleted)
        {
            await Task.Yield();
        }

        store.Put("b", "1");
        Assert.That(left.ResultOrFail("the loop that leaves"), Is.EqualTo(1));
        await cancel.CancelAsync();
        Assert.CatchAsync<OperationCanceledException>(async () => await cancelled.WaitAsync(Waits.Limit));
        Assert.That(store.Watches.SyncedCount, Is.Zero, "both watches are out of the index");
    }

    [Test]
    public async Task DisposingTheStoreEndsItsWatchesAfterWhatTheyBuffered()
    {
        var store = OpenOn(new FaultInjectingFileSystem(14));
        await using var watch = store.Watch(Key("a")).GetAsyncEnumerator();
        store.Put("a", "1");
        await store.DisposeAsync();
        Assert.That(watch.Next("the buffered put").Events.Select(Show), Is.EqualTo(new[] { "put a=1@2" }));
        Assert.ThrowsAsync<ObjectDisposedException>(async () => await watch.MoveNextAsync());
        Assert.Throws<ObjectDisposedException>(() => store.Watch(Key("a")));
    }

    [Test]
    public async Task AFaultedStoreEndsItsWatchesWithStorageFaulted()
    {
        var fs = new FaultInjectingFileSystem(15);
        await using var store = OpenOn(fs);
        await using var watch = store.Watch(Key("a")).GetAsyncEnumerator();
        var waiting = watch.MoveNextAsync().AsTask();
        fs.FailWhen = op => op.Kind == FaultOperationKind.Flush;
        Assert.CatchAsync(async () => await store.PutAsync(new PutRequest { Key = B("a"), Value = B("lost") }));
        fs.FailWhen = null;
        var error = Assert.CatchAsync(async () => await waiting.WaitAsync(Waits.Limit))!;
        Assert.That(error, Is.TypeOf<StorageFaultedException>());
    }

    [Test]
    public async Task BadRequestsAreRefusedNamingWhatIsWrong()
    {
        await using var store = OpenOn(new FaultInjectingFileSystem(16));
        Assert.That(Assert.Throws<MvccException>(() => store.Watch(new WatchRequest()))!.Error, Is.EqualTo(MvccError.EmptyKey));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => store.Watch(Key("a", start: -1)))!.ParamName, Is.EqualTo("StartRevision"));
        Assert.That(Assert.Throws<ArgumentException>(() => store.WatchAsync(new WatchRequest { Key = B("b"), RangeEnd = B("a") }))!.ParamName, Is.EqualTo("RangeEnd"));
        var watch = store.Watch(Key("a"));
        _ = watch.GetAsyncEnumerator();
        Assert.Throws<InvalidOperationException>(() => watch.GetAsyncEnumerator());
        watch.Dispose();
    }

    private static IEnumerable<TestCaseData> BadOptions()
    {
        yield return new TestCaseData("MaxBufferedEvents", (Func<WatchOptions>)(() => new WatchOptions { MaxBufferedEvents = 0 }));
        yield return new TestCaseData("ProgressInterval", (Func<WatchOptions>)(() => new WatchOptions { ProgressInterval = TimeSpan.Zero }));
    }

    [TestCaseSource(nameof(BadOptions))]
    public void AnOutOfRangeWatchOptionIsRefusedNamingTheOption(string name, Func<WatchOptions> create)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => create())!;
        Assert.That(error.ParamName, Is.EqualTo(name));
        Assert.That(error.Message, Does.Contain(name));
    }
}
