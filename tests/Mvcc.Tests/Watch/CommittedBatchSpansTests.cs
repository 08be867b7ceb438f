using EmbeddedRaft.Mvcc.Watch;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using Microsoft.Extensions.Time.Testing;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;
using static EmbeddedRaft.Mvcc.Tests.Watch.WatchTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Watch;

/// <summary>
/// A synced store's committed batch whose only synced watchers are a few range watchers reaches each
/// of them as one span of the batch, with nothing staged per change (<see cref="WatchHub.MaxSpanWatchers"/>);
/// each consumer picks its own events out of the span. Every watcher still gets exactly the history of
/// its range and filters, whole revisions in order, no response without events unless progress was
/// asked for, and its periodic progress notifications when its spans held nothing for it; a batch a
/// watcher's buffer has no room for, or a watcher of one key beside them, is staged change by change.
/// </summary>
public sealed class CommittedBatchSpansTests
{
    private const int Batches = 40;

    [Test]
    public async Task FourRangeWatchersGetExactlyTheirEventsFromSpansOfEachBatch()
    {
        await using var store = OpenOn(new FaultInjectingFileSystem(71));
        store.Put("s/0", "before");
        long first = store.Revision + 1;
        long futureStart = first + 50;
        using var all = store.Watch(Prefix("s/"));
        using var narrow = store.Watch(new WatchRequest { Key = B("s/3"), RangeEnd = B("s/5") });
        using var deletes = store.Watch(new WatchRequest { Key = B("s/"), RangeEnd = KeyRange.PrefixEnd(B("s/")), NoPut = true, ReuseEvents = true });
        using var later = store.Watch(Prefix("s/", futureStart));
        long last = long.MaxValue;
        var readers = new[] { all, narrow, deletes, later }.Select(watch => Task.Run(() => ReadUntilAsync(watch, () => Volatile.Read(ref last)))).ToList();

        // Batches of concurrent puts inside and outside the watched prefix, a transaction writing on
        // both sides of the narrow range in one revision, and deletes.
        var writes = new List<(Task<long> Revision, List<(WatchEventType Type, string Key, string Value)> Events)>();
        for (int batch = 0; batch < Batches; batch++)
        {
            var inBatch = new List<Task>();
            for (int i = 0; i < 6; i++)
            {
                string key = i % 3 == 2 ? $"o/{i}" : $"s/{(batch + i) % 10}";
                string value = $"{batch}.{i}:" + new string('v', (batch * 7 + i) % 40);
                var put = PutRevision(store.PutAsync(new PutRequest { Key = B(key), Value = B(value) }));
                writes.Add((put, [(WatchEventType.Put, key, value)]));
                inBatch.Add(put);
            }

            if (batch % 5 == 4)
            {
                var txn = TxnRevision(store.TxnAsync(new TxnRequest
                {
                    Success = [RequestOp.Put(new PutRequest { Key = B("s/2"), Value = B($"t{batch}") }), RequestOp.Put(new PutRequest { Key = B("s/4"), Value = B($"t{batch}") }), RequestOp.Put(new PutRequest { Key = B("o/t"), Value = B($"t{batch}") })],
                }));
                writes.Add((txn, [(WatchEventType.Put, "s/2", $"t{batch}"), (WatchEventType.Put, "s/4", $"t{batch}"), (WatchEventType.Put, "o/t", $"t{batch}")]));
                inBatch.Add(txn);
            }

            await Task.WhenAll(inBatch).WaitAsync(TimeSpan.FromMinutes(1));
            if (batch % 7 == 6)
            {
                string deleted = $"s/{batch % 10}";
                var delete = await store.DeleteRangeAsync(new DeleteRangeRequest { Key = B(deleted) });
                writes.Add((Task.FromResult(delete.Header.Revision), delete.Deleted == 1 ? [(WatchEventType.Delete, deleted, "")] : []));
            }
        }

        var history = new List<(long Revision, WatchEventType Type, string Key, string Value)>();
        foreach (var (revision, events) in writes)
        {
            long at = await revision.WaitAsync(TimeSpan.FromMinutes(1));
            history.AddRange(events.Select(e => (at, e.Type, e.Key, e.Value)));
        }

        history = [.. history.Select((e, i) => (e, i)).OrderBy(x => x.e.Revision).ThenBy(x => x.i).Select(x => x.e)];
        Volatile.Write(ref last, store.Revision);
        foreach (var watch in new[] { all, narrow, deletes, later })
        {
            watch.RequestProgress(); // a consumer that already has every event of its range waits for more
        }

        var responses = readers.Select(r => r.ResultOrFail("a watcher's responses")).ToList();
        AssertDelivered(responses[0], [.. history.Where(e => e.Key.StartsWith("s/", StringComparison.Ordinal))], "the prefix");
        AssertDelivered(responses[1], [.. history.Where(e => string.CompareOrdinal(e.Key, "s/3") >= 0 && string.CompareOrdinal(e.Key, "s/5") < 0)], "the narrow range");
        AssertDelivered(responses[2], [.. history.Where(e => e.Key.StartsWith("s/", StringComparison.Ordinal) && e.Type == WatchEventType.Delete)], "deletes only, reusing");
        AssertDelivered(responses[3], [.. history.Where(e => e.Key.StartsWith("s/", StringComparison.Ordinal) && e.Revision >= futureStart)], "from a later revision");
        Assert.That(store.Watches.SpanBatchCount, Is.GreaterThan(0), "batches reached the watchers as spans (a batch finding a buffer that holds the most batches is staged change by change)");
        Assert.That(store.Watches.FellBehindCount, Is.Zero, "every watcher stayed on the live path");
    }

    [Test]
    public async Task AWatcherOfOneKeyBesideThemKeepsEveryBatchStagedChangeByChange()
    {
        await using var store = OpenOn(new FaultInjectingFileSystem(72));
        await using var prefix = store.Watch(Prefix("k/")).GetAsyncEnumerator();
        await using var oneKey = store.Watch(Key("k/1")).GetAsyncEnumerator();
        for (int i = 0; i < 10; i++)
        {
            store.Put($"k/{i % 3}", $"v{i}");
        }

        Assert.That(prefix.EventsThrough(store.Revision, "the prefix").Select(Show), Is.EqualTo(Enumerable.Range(0, 10).Select(i => $"put k/{i % 3}=v{i}@{i + 2}")));
        Assert.That(oneKey.EventsThrough(store.Revision, "one key").Select(Show), Is.EqualTo(new[] { 1, 4, 7 }.Select(i => $"put k/1=v{i}@{i + 2}")));
        Assert.That(store.Watches.SpanBatchCount, Is.Zero, "a one-key watcher is found per change, so every watcher is staged that way");
    }

    [Test]
    public async Task ABatchTheBufferHasNoRoomForIsStagedRevisionByRevisionAndTheWatcherFallsBehindThere()
    {
        // Transactions of 20 puts, each its own batch, while the consumer reads nothing: two spans fit
        // in 50 buffered events, the third batch does not and leaves the live path; then, with the
        // buffer taken, spans again.
        await using var store = OpenOn(new FaultInjectingFileSystem(73), new MvccStoreOptions { Watch = new WatchOptions { MaxBufferedEvents = 50 } });
        using var stream = store.Watch(Prefix("b/"));
        await using var watch = stream.GetAsyncEnumerator();
        var expected = new List<string>();
        for (int t = 0; t < 3; t++)
        {
            expected.AddRange(PutTwenty(store, t));
        }

        Assert.That((store.Watches.SpanBatchCount, store.Watches.FellBehindCount), Is.EqualTo((2L, 1L)), "two spans, then the third batch fell behind");
        var events = watch.EventsThrough(store.Revision, "two spans, then history").Select(Show).ToList();

        // Caught up: its next take puts it back on the live path, where it waits.
        var next = watch.MoveNextAsync().AsTask();
        WaitUntilWaiting(stream.Watcher, "the consumer back on the live path");
        expected.AddRange(PutTwenty(store, 3));
        Assert.That(next.ResultOrFail("the next span"), Is.True);
        events.AddRange(watch.Current.Events.Select(Show));
        Assert.That(events, Is.EqualTo(expected), "every event once, in order");
        Assert.That(store.Watches.SpanBatchCount, Is.EqualTo(3L), "back on spans once caught up");
    }

    [Test]
    public async Task ABufferHoldingTheMostBatchesGetsTheNextOneStagedChangeByChange()
    {
        await using var store = OpenOn(new FaultInjectingFileSystem(74), new MvccStoreOptions { Watch = new WatchOptions { MaxBufferedEvents = 10_000 } });
        await using var watch = store.Watch(Prefix("h/")).GetAsyncEnumerator();
        var expected = new List<string>();
        for (int i = 0; i < WatchHub.MaxHeldBatchesPerWatcher + 3; i++)
        {
            store.Put($"h/{i % 2}", $"v{i}");
            expected.Add($"put h/{i % 2}=v{i}@{i + 2}");
        }

        Assert.That(store.Watches.SpanBatchCount, Is.EqualTo((long)WatchHub.MaxHeldBatchesPerWatcher), "a span per batch until the buffer holds the most batches");
        Assert.That(watch.EventsThrough(store.Revision, "spans, then staged changes").Select(Show), Is.EqualTo(expected));
        Assert.That(store.Watches.FellBehindCount, Is.Zero);
    }

    [Test]
    public async Task ANarrowWatcherGetsNoResponseFromSpansWithoutItsEventsButStillItsPeriodicProgress()
    {
        var clock = new FakeTimeProvider();
        var options = new MvccStoreOptions { Watch = new WatchOptions { ProgressInterval = TimeSpan.FromSeconds(5), TimeProvider = clock } };
        await using var store = OpenOn(new FaultInjectingFileSystem(75), options);
        using var watch = store.Watch(new WatchRequest { Key = B("n/a"), RangeEnd = B("n/b"), ProgressNotify = true });
        await using var responses = watch.GetAsyncEnumerator();
        var pending = responses.MoveNextAsync().AsTask();
        WaitUntilWaiting(watch.Watcher, "the consumer waiting");

        // A batch outside the range: a span for the watcher, which its consumer finds empty and goes back to waiting.
        long spansBefore = store.Watches.SpanBatchCount;
        store.Put("n/c", "outside");
        Assert.That(store.Watches.SpanBatchCount, Is.EqualTo(spansBefore + 1), "the batch reached the watcher as a span");
        WaitUntilWaiting(watch.Watcher, "the consumer waiting again after the span held nothing for it");
        Assert.That(pending.IsCompleted, Is.False, "no response for a span without the watcher's events");

        // Nothing was delivered in the interval: the tick's progress notification comes.
        clock.Advance(TimeSpan.FromSeconds(5));
        Assert.That(pending.ResultOrFail("periodic progress"), Is.True);
        Assert.That((responses.Current.IsProgressNotify, responses.Current.Header.Revision), Is.EqualTo((true, store.Revision)), responses.Current.ToString());

        store.Put("n/c", "outside again");
        store.Put("n/a1", "inside");
        var next = responses.Next("the event in range");
        Assert.That(next.Events.Select(Show), Is.EqualTo(new[] { $"put n/a1=inside@{store.Revision}" }), "the next response is the event, not an empty one");
    }

    private static IEnumerable<string> PutTwenty(MvccStore store, int t)
    {
        store.Txn(new TxnRequest { Success = [.. Enumerable.Range(0, 20).Select(i => RequestOp.Put(new PutRequest { Key = B($"b/{i:D2}"), Value = B($"{t}.{i}") }))] });
        long revision = store.Revision;
        return Enumerable.Range(0, 20).Select(i => $"put b/{i:D2}={t}.{i}@{revision}");
    }

    /// <summary>Waits (bounded) until the watch's consumer waits for the hub to wake it with nothing buffered.</summary>
    private static void WaitUntilWaiting(Watcher watcher, string what)
    {
        Assert.That(SpinWait.SpinUntil(() => watcher.Waiter is not null && watcher.Buffer is null, TimeSpan.FromMinutes(1)), Is.True, $"{what}: not reached within a minute");
    }

    private static async Task<long> PutRevision(ValueTask<PutResponse> put) => (await put).Header.Revision;

    private static async Task<long> TxnRevision(ValueTask<TxnResponse> txn)
    {
        var response = await txn;
        Assert.That(response.Succeeded, Is.True);
        return response.Header.Revision;
    }

    /// <summary>Every response of <paramref name="watch"/> until one reaches the revision <paramref name="last"/> gives (read again after each response), copied at once (a reusing watch overwrites them).</summary>
    private static async Task<List<(long Revision, List<(long Revision, WatchEventType Type, string Key, string Value)> Events)>> ReadUntilAsync(WatchStream watch, Func<long> last)
    {
        var responses = new List<(long, List<(long, WatchEventType, string, string)>)>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        await foreach (var response in watch.WithCancellation(timeout.Token))
        {
            responses.Add((response.Header.Revision, [.. response.Events.Select(e => (e.Kv.ModRevision, e.Type, S(e.Kv.Key), S(e.Kv.Value)))]));
            if (response.Header.Revision >= last())
            {
                break;
            }
        }

        return responses;
    }

    private static void AssertDelivered(List<(long Revision, List<(long Revision, WatchEventType Type, string Key, string Value)> Events)> responses, List<(long Revision, WatchEventType Type, string Key, string Value)> expected, string watcher)
    {
        Assert.That(responses.SelectMany(r => r.Events), Is.EqualTo(expected), $"{watcher}: the history of its range, in order, each event once");
        Assert.That(responses.Take(responses.Count - 1).Count(r => r.Events.Count == 0), Is.Zero, $"{watcher}: no response without events but the last (the progress asked for at the end)");
        var responseOfRevision = new Dictionary<long, int>();
        for (int i = 0; i < responses.Count; i++)
        {
            if (i > 0)
            {
                Assert.That(responses[i].Revision, Is.GreaterThanOrEqualTo(responses[i - 1].Revision), $"{watcher}: response revisions in order");
            }

            foreach (var e in responses[i].Events)
            {
                Assert.That(e.Revision, Is.LessThanOrEqualTo(responses[i].Revision), $"{watcher}: an event above its response's revision");
                Assert.That(e.Revision, Is.GreaterThan(i > 0 ? responses[i - 1].Revision : 0), $"{watcher}: an event at or below the previous response's revision");
                Assert.That(responseOfRevision.TryAdd(e.Revision, i) || responseOfRevision[e.Revision] == i, Is.True, $"{watcher}: revision {e.Revision} split across responses");
            }
        }
    }
}
