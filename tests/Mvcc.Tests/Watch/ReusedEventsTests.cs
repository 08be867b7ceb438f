using System.Text;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Watch;

/// <summary>
/// A watch that reuses its events (<see cref="WatchRequest.ReuseEvents"/>) delivers exactly the events
/// an ordinary one does, each valid until the consumer's next <c>MoveNextAsync</c> however far the
/// writer goes meanwhile (its keys and values slice the store's batch buffers, which must not be
/// written again before then), and allocates no object per live event.
/// </summary>
public sealed class ReusedEventsTests
{
    private static IEnumerable<TestCaseData> Modes() =>
    [
        new TestCaseData(MvccDurability.Synced).SetArgDisplayNames("synced"),
        new TestCaseData(MvccDurability.NoSync).SetArgDisplayNames("no-sync"),
    ];

    [TestCaseSource(nameof(Modes))]
    public async Task AReusingWatchDeliversEveryEventWithItsPreviousValueAsWritten(MvccDurability durability)
    {
        // Puts of varying lengths, deletes and transactions over 40 batches, read along by one
        // consumer task that copies each response before asking for the next; a one-key watch on
        // "w/3" makes that key's changes shared events the writer builds (never overwritten).
        await using var store = OpenOn(new FaultInjectingFileSystem(61), new MvccStoreOptions { Durability = durability, Watch = new WatchOptions { MaxBufferedEvents = 10_000 } });
        using var reusing = store.Watch(new WatchRequest { Key = B("w/"), RangeEnd = KeyRange.PrefixEnd(B("w/")), PrevKv = true, ReuseEvents = true });
        await using var sharing = store.Watch(new WatchRequest { Key = B("w/3") }).GetAsyncEnumerator();
        long last = long.MaxValue;
        var reader = Task.Run(async () =>
        {
            var seen = new List<string>();
            await foreach (var response in reusing)
            {
                seen.AddRange(response.Events.Select(ShowWithPrevious));
                if (response.Header.Revision >= Volatile.Read(ref last))
                {
                    break;
                }
            }

            return seen;
        });

        var expected = new List<string>();
        var values = new Dictionary<string, string>();
        for (int batch = 0; batch < 40; batch++)
        {
            var writes = new List<Task>();
            for (int i = 0; i < 6; i++)
            {
                string key = $"w/{(batch * 6 + i) % 7}";
                string value = $"{batch}.{i}:" + new string('v', (batch * 13 + i) % 70);
                writes.Add(store.PutAsync(new PutRequest { Key = B(key), Value = B(value) }).AsTask());
                expected.Add($"put {key}={value} prev={values.GetValueOrDefault(key, "-")}");
                values[key] = value;
            }

            await Task.WhenAll(writes).WaitAsync(TimeSpan.FromMinutes(1));
            if (batch % 5 == 4)
            {
                string deleted = $"w/{batch % 7}";
                store.Delete(deleted);
                expected.Add($"delete {deleted} prev={values.GetValueOrDefault(deleted, "-")}");
                values.Remove(deleted);
            }
        }

        Volatile.Write(ref last, store.Revision);
        reusing.RequestProgress(); // in case the consumer already has the last revision and waits for more
        var seen = reader.ResultOrFail("the reusing consumer's events");
        Assert.That(seen, Is.EqualTo(expected), "every event, in order, with the bytes and previous values written");
        Assert.That(store.Watches.FellBehindCount, Is.Zero, "it stayed on the live path");
    }

    [Test]
    public async Task AReusingWatchsLastResponseKeepsItsBytesUntilTheNextMoveNextWhileTheWriterCommitsMore()
    {
        // The first batch's 50 events are the consumer's last response; then the writer commits 30
        // more batches of values of the same lengths. Were the first batch's buffers let go before the
        // consumer's next MoveNextAsync, a later batch would have written over the bytes it still reads.
        await using var store = OpenOn(new FaultInjectingFileSystem(62), new MvccStoreOptions { Watch = new WatchOptions { MaxBufferedEvents = 10_000 } });
        await using var watch = store.Watch(new WatchRequest { Key = B("r/"), RangeEnd = KeyRange.PrefixEnd(B("r/")), ReuseEvents = true }).GetAsyncEnumerator();
        await PutBatchAsync(store, "first");
        var response = watch.Next("the first batch");
        Assert.That(response.Header.Revision, Is.EqualTo(store.Revision), "one response, the whole batch");
        var held = response.Events.ToList();

        var expectedLater = new List<string>();
        for (int batch = 0; batch < 30; batch++)
        {
            expectedLater.AddRange(await PutBatchAsync(store, $"l{batch:D4}"));
        }

        Assert.That(held.Select(e => S(e.Kv.Value)), Is.EqualTo(Enumerable.Range(0, 50).Select(i => $"first:{i:D3}")), "the last response's values, still as written");
        Assert.That(held.Select(e => S(e.Kv.Key)), Is.EqualTo(Enumerable.Range(0, 50).Select(i => $"r/{i:D3}")), "and its keys");

        var later = new List<string>();
        while (true)
        {
            var next = watch.Next("the later batches");
            later.AddRange(next.Events.Select(e => $"{S(e.Kv.Key)}={S(e.Kv.Value)}"));
            if (next.Header.Revision >= store.Revision)
            {
                break;
            }
        }

        Assert.That(later, Is.EqualTo(expectedLater), "the later batches' events, exact");
    }

    [TestCaseSource(nameof(Modes))]
    public async Task ALiveReusingWatchAllocatesNoObjectPerEvent(MvccDurability durability)
    {
        // 3,000 puts wait in each watch's buffer; reading them takes MoveNextAsync calls that complete
        // at once on this thread, so this thread's allocation is the consumer's, provided the consumer
        // decodes every event itself. A watcher whose buffer already holds
        // WatchHub.MaxHeldBatchesPerWatcher (4) pending batches gets its further events built by the
        // writer, on the writer's thread (the bound on what a stopped consumer pins), and its consumer
        // only hands them out; left to the writer's timing, a loaded machine split a round's synced
        // puts into dozens of small batches (each commit as soon as the queue ran dry) and the measure
        // read only part of the ordinary watch's objects (session 12: 79.7 B per event; session 13:
        // below the bound; forced into 59 batches: 18.2 B). So each round commits in at most two
        // batches: synced, the writer is held in its first commit's flush until every put of the round
        // is queued, so the rest is one batch; no-sync, a batch ends only at BatchLimit (10,000)
        // writes. That the consumer decoded every event is checked (HeldBoundEventCount).
        // The first round warms up (the reusing watch's own event objects are made then); the second
        // is measured. The two watches have distinct prefixes: a change both took would be one event
        // the writer built.
        var fs = new FaultInjectingFileSystem(63);
        using var roundQueued = new ManualResetEventSlim(initialState: true);
        fs.BeforeEntering = (kind, _) =>
        {
            if (kind == FaultOperationKind.Flush)
            {
                roundQueued.Wait();
            }
        };
        await using var store = OpenOn(fs, new MvccStoreOptions { Durability = durability, BatchInterval = MvccStoreOptions.MaxBatchInterval, Watch = new WatchOptions { MaxBufferedEvents = 100_000 } });
        await using var reusing = store.Watch(new WatchRequest { Key = B("a/"), RangeEnd = KeyRange.PrefixEnd(B("a/")), ReuseEvents = true }).GetAsyncEnumerator();
        await using var ordinary = store.Watch(WatchTestSupport.Prefix("b/")).GetAsyncEnumerator();
        const int Puts = 3_000;
        double reusingBytes = 0;
        double ordinaryBytes = 0;
        for (int round = 0; round < 2; round++)
        {
            long batchesBefore = store.BatchesCommitted;
            long builtBefore = store.Watches.HeldBoundEventCount;
            var puts = new List<Task>(2 * Puts);
            roundQueued.Reset();
            try
            {
                for (int i = 0; i < 2 * Puts; i++)
                {
                    puts.Add(store.PutAsync(new PutRequest { Key = B($"{(i % 2 == 0 ? "a" : "b")}/{i % 500:D4}"), Value = new byte[100] }).AsTask());
                }
            }
            finally
            {
                roundQueued.Set();
            }

            await Task.WhenAll(puts).WaitAsync(TimeSpan.FromMinutes(1));
            long batches = store.BatchesCommitted - batchesBefore;
            long writerBuilt = store.Watches.HeldBoundEventCount - builtBefore;
            Assert.That(writerBuilt, Is.Zero, $"round {round}: every event was left for its consumer to decode ({batches} batches committed)");
            reusingBytes = BytesPerEvent(reusing, store.Revision, Puts);
            ordinaryBytes = BytesPerEvent(ordinary, store.Revision, Puts);
            TestContext.Out.WriteLine($"round {round}: {batches} batches committed; bytes allocated per event: reusing {reusingBytes:F1}, ordinary {ordinaryBytes:F1}");
        }

        // The measure must see an ordinary watch's event objects: at least one object (24 B) per event
        // beyond the reusing watch's figure (it reads ~265 B per event: an event, its key-value, the
        // key and value copied).
        Assert.That(ordinaryBytes, Is.GreaterThan(reusingBytes + 24), "the measure sees an ordinary watch's event objects");
        // Any object per event would be at least 24 bytes (an empty object). Measured: 1.3-1.7 B per
        // event (a response and its header per 256 events are ~0.3). Once 12.8, in a whole test-project
        // run at load 15 before the rounds were held to two batches: as if the warm-up round's events
        // had been built by the writer, so that the reusing watch made its 256 event objects in the
        // measured round instead (making them costs the warm-up round 14.6-14.9 B per event).
        Assert.That(reusingBytes, Is.LessThan(24), "a reusing watch allocates per response and batch, not per event");
    }

    /// <summary>Bytes this thread allocates per event reading <paramref name="events"/> events through <paramref name="revision"/>, every MoveNextAsync completing at once.</summary>
    private static double BytesPerEvent(IAsyncEnumerator<WatchResponse> watch, long revision, int events)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        int seen = 0;
        long valueBytes = 0;
        while (true)
        {
            var moved = watch.MoveNextAsync();
            Assert.That(moved.IsCompletedSuccessfully && moved.Result, Is.True, $"the events were buffered: the watch answers at once (after {seen} events)");
            var current = watch.Current.Events;
            for (int i = 0; i < current.Count; i++)
            {
                // Indexed: a foreach over the interface would box an enumerator per response.
                valueBytes += current[i].Kv.Value.Length;
            }

            seen += watch.Current.Events.Count;
            if (watch.Current.Header.Revision >= revision)
            {
                break;
            }
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(seen, Is.EqualTo(events), "every event of the round");
        Assert.That(valueBytes, Is.EqualTo(events * 100L), "every value read");
        return (double)allocated / events;
    }

    /// <summary>Puts "r/000".."r/049" with values "<paramref name="label"/>:000".. as one batch; returns them as "key=value".</summary>
    private static async Task<List<string>> PutBatchAsync(MvccStore store, string label)
    {
        var written = Enumerable.Range(0, 50).Select(i => ($"r/{i:D3}", $"{label}:{i:D3}")).ToList();
        await Task.WhenAll(written.Select(w => store.PutAsync(new PutRequest { Key = B(w.Item1), Value = B(w.Item2) }).AsTask())).WaitAsync(TimeSpan.FromMinutes(1));
        return [.. written.Select(w => $"{w.Item1}={w.Item2}")];
    }

    private static string ShowWithPrevious(WatchEvent e) =>
        $"{(e.Type == WatchEventType.Put ? $"put {S(e.Kv.Key)}={S(e.Kv.Value)}" : $"delete {S(e.Kv.Key)}")} prev={(e.PrevKv is null ? "-" : Encoding.UTF8.GetString(e.PrevKv.Value.Span))}";
}
