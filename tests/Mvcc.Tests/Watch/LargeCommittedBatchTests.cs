using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;
using static EmbeddedRaft.Mvcc.Tests.Watch.WatchTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Watch;

/// <summary>
/// A synced batch's commit notifies its revisions to the watchers after its flush, one revision
/// after another while the consumers already read. A batch of over a thousand changes, of
/// multi-change transactions, reaches every kind of watcher exactly: a consumer reading while the writer notifies, one that reads nothing
/// until the end (its buffer fills in the middle of the batch: it falls behind there and catches up
/// from history), a one-key watch and a deletes-only watch. Each gets the writes' own history
/// filtered by its range, in order, every revision whole in one response.
/// </summary>
public sealed class LargeCommittedBatchTests
{
    private const int Transactions = 60;
    private const int PutsPerTransaction = 37;
    private const int Keys = 50;

    [Test]
    public async Task ABatchOfManyChunksReachesEveryWatcherWholeAndInOrder()
    {
        var disk = new FaultInjectingFileSystem(31);
        using var flushHeld = new ManualResetEventSlim(false);
        using var flushEntered = new ManualResetEventSlim(false);
        bool holdNextFlush = false;
        int storeFlushes = 0;
        disk.BeforeEntering = (kind, path) =>
        {
            if (kind != FaultOperationKind.Flush || !path.EndsWith("mvcc.db", StringComparison.Ordinal))
            {
                return;
            }

            Interlocked.Increment(ref storeFlushes);
            if (Volatile.Read(ref holdNextFlush))
            {
                Volatile.Write(ref holdNextFlush, false);
                flushEntered.Set();
                flushHeld.Wait(TimeSpan.FromMinutes(1)); // the test's own bounded waits fail if it never lets go
            }
        };

        // A buffer shorter than the batch: a watcher not reading while it is notified must leave the live path in its middle.
        var options = new MvccStoreOptions { Watch = new WatchOptions { MaxBufferedEvents = 300 } };
        await using var store = OpenOn(disk, options);
        int flushesBeforeWarm = Volatile.Read(ref storeFlushes);
        store.Put("t/warm", "0");
        int flushesPerCommit = Volatile.Read(ref storeFlushes) - flushesBeforeWarm;

        await using var reading = store.Watch(Prefix("t/"));
        await using var idle = store.Watch(Prefix("t/"));
        await using var oneKey = store.Watch(Key("t/07"));
        await using var deletesOnly = store.Watch(new WatchRequest { Key = B("t/"), RangeEnd = KeyRange.PrefixEnd(B("t/")), NoPut = true });
        long lastRevision = long.MaxValue;
        var readingResponses = Task.Run(() => ReadUntilAsync(reading, () => Volatile.Read(ref lastRevision)));

        // Hold the writer inside one commit's flush while every write below queues behind it: they
        // are then applied as one batch and committed (and notified) together.
        Volatile.Write(ref holdNextFlush, true);
        int flushesBefore = Volatile.Read(ref storeFlushes);
        var first = store.PutAsync(new PutRequest { Key = B("t/first"), Value = B("held") }).AsTask();
        Assert.That(flushEntered.Wait(TimeSpan.FromMinutes(1)), Is.True, "the first write's commit reached its flush");

        var model = new SortedSet<string>(StringComparer.Ordinal) { "t/warm" };
        var expected = new List<(Task<long> Revision, List<(WatchEventType Type, string Key, string Value)> Events)>();
        for (int t = 0; t < Transactions; t++)
        {
            var puts = new List<(WatchEventType, string, string)>();
            var ops = new List<RequestOp>();
            for (int p = 0; p < PutsPerTransaction; p++)
            {
                string key = $"t/{((t * PutsPerTransaction) + p) % Keys:D2}";
                string value = $"{t}.{p}";
                ops.Add(RequestOp.Put(new PutRequest { Key = B(key), Value = B(value) }));
                puts.Add((WatchEventType.Put, key, value));
                model.Add(key);
            }

            expected.Add((TxnRevision(store.TxnAsync(new TxnRequest { Success = ops })), puts));
            if (t % 10 == 9)
            {
                string deleted = $"t/{t % Keys:D2}";
                expected.Add((DeleteRevision(store.DeleteRangeAsync(new DeleteRangeRequest { Key = B(deleted) })), model.Remove(deleted) ? [(WatchEventType.Delete, deleted, "")] : []));
            }
        }

        flushHeld.Set();
        var history = new List<(long Revision, WatchEventType Type, string Key, string Value)>
        {
            ((await first.WaitAsync(TimeSpan.FromMinutes(1))).Header.Revision, WatchEventType.Put, "t/first", "held"),
        };
        foreach (var (revision, events) in expected)
        {
            long at = await revision.WaitAsync(TimeSpan.FromMinutes(1));
            history.AddRange(events.Select(e => (at, e.Type, e.Key, e.Value)));
        }

        Assert.That(Volatile.Read(ref storeFlushes) - flushesBefore, Is.EqualTo(2 * flushesPerCommit), "the held commit, then every queued write in one batch");
        Assert.That(history, Has.Count.GreaterThan(1_000), "the batch is long enough for a consumer reading along to take several responses of it");
        Volatile.Write(ref lastRevision, store.Revision);
        reading.RequestProgress(); // in case its consumer already has the last revision and waits for more

        var expectedAll = history;
        AssertDelivered(readingResponses.ResultOrFail("the reading watcher's events"), expectedAll, "reading while notified");
        AssertDelivered(await ReadUntilAsync(idle, () => store.Revision), expectedAll, "reading only at the end");
        AssertDelivered(await ReadUntilAsync(oneKey, () => store.Revision), [.. expectedAll.Where(e => e.Key == "t/07")], "one key");
        AssertDelivered(await ReadUntilAsync(deletesOnly, () => store.Revision), [.. expectedAll.Where(e => e.Type == WatchEventType.Delete)], "deletes only");
        Assert.That(store.Watches.FellBehindCount, Is.GreaterThan(0), "the idle watcher's buffer filled in the middle of the batch");
    }

    private static async Task<long> TxnRevision(ValueTask<TxnResponse> txn)
    {
        var response = await txn;
        Assert.That(response.Succeeded, Is.True);
        return response.Header.Revision;
    }

    private static async Task<long> DeleteRevision(ValueTask<DeleteRangeResponse> delete) => (await delete).Header.Revision;

    /// <summary>Every response of <paramref name="watch"/> until one reaches the revision <paramref name="last"/> gives (read again after each response).</summary>
    private static async Task<List<WatchResponse>> ReadUntilAsync(WatchStream watch, Func<long> last)
    {
        var responses = new List<WatchResponse>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        await foreach (var response in watch.WithCancellation(timeout.Token))
        {
            responses.Add(response);
            if (response.Header.Revision >= last())
            {
                break;
            }
        }

        return responses;
    }

    private static void AssertDelivered(List<WatchResponse> responses, List<(long Revision, WatchEventType Type, string Key, string Value)> expected, string watcher)
    {
        var delivered = responses.SelectMany(r => r.Events).Select(e => (e.Kv.ModRevision, e.Type, S(e.Kv.Key), S(e.Kv.Value))).ToList();
        Assert.That(delivered, Is.EqualTo(expected), $"{watcher}: the history of its range, in order, each event once");

        // Whole revisions: no revision's events are split across two responses, and each response's
        // header revision is at or past its events.
        var responseOfRevision = new Dictionary<long, int>();
        for (int i = 0; i < responses.Count; i++)
        {
            foreach (var e in responses[i].Events)
            {
                Assert.That(e.Kv.ModRevision, Is.LessThanOrEqualTo(responses[i].Header.Revision), $"{watcher}: an event above its response's revision");
                if (responseOfRevision.TryGetValue(e.Kv.ModRevision, out int seenIn))
                {
                    Assert.That(seenIn, Is.EqualTo(i), $"{watcher}: revision {e.Kv.ModRevision} split across responses {seenIn} and {i}");
                }
                else
                {
                    responseOfRevision[e.Kv.ModRevision] = i;
                }
            }
        }
    }
}
