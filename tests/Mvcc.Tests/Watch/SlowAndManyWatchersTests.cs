using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;
using static EmbeddedRaft.Mvcc.Tests.Watch.WatchTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Watch;

/// <summary>
/// Slow consumers never hold up or lose writes: they leave the live path, catch up from history,
/// and rejoin, or end with the compacted error when that history is gone. Many watchers are found
/// through the index and each gets its own events.
/// </summary>
public sealed class SlowAndManyWatchersTests
{
    [Test]
    public async Task AWatcherAHundredTimesSlowerThanTheWriterGetsEveryEventInOrder()
    {
        const int Puts = 3_000;
        var options = new MvccStoreOptions { Durability = MvccDurability.NoSync, Watch = new WatchOptions { MaxBufferedEvents = 16 } };
        await using var store = OpenOn(new FaultInjectingFileSystem(21), options);
        using var turns = new SemaphoreSlim(0);
        using var turnsTaken = new SemaphoreSlim(0);
        await using var watch = store.Watch(Prefix("key/"));
        bool writesDone = false;
        var consumer = Task.Run(async () =>
        {
            var seen = new List<long>();
            await using var responses = watch.GetAsyncEnumerator();
            while (seen.Count < Puts)
            {
                // One response per 100 writes while the writer runs: 100 times slower than it.
                bool turn = !Volatile.Read(ref writesDone);
                if (turn)
                {
                    await turns.WaitAsync();
                }

                Assert.That(await responses.MoveNextAsync(), Is.True);
                seen.AddRange(responses.Current.Events.Select(e => e.Kv.ModRevision));
                if (turn)
                {
                    turnsTaken.Release();
                }
            }

            // Caught up, its next take puts it back on the live path (then answers the progress request).
            watch.RequestProgress();
            Assert.That(await responses.MoveNextAsync(), Is.True);
            Assert.That(responses.Current.IsProgressNotify, Is.True);
            Assert.That(store.Watches.SyncedCount, Is.EqualTo(1), "live again once caught up");
            return seen;
        });

        for (int i = 0; i < Puts; i++)
        {
            await store.PutAsync(new PutRequest { Key = B($"key/{i % 50}"), Value = B($"{i}") });
            // A history read takes up to 256 events, so a turn can catch the watcher up and put it
            // back on the live path: the writer waits for each turn to end, and the last 100 puts
            // get none, so the 16-event buffer overflows again before the check below.
            if (i % 100 == 99 && i < Puts - 100)
            {
                turns.Release();
                await turnsTaken.WaitAsync();
            }
        }

        Assert.That(store.Watches.SyncedCount, Is.Zero, "the lagging watcher is off the live path: the writer does nothing for it");
        Volatile.Write(ref writesDone, true);
        turns.Release();
        var seen = consumer.ResultOrFail("the slow watcher's catch-up");
        Assert.That(seen, Is.EqualTo(Enumerable.Range(2, Puts).Select(r => (long)r)), "every put, in order, once");
        Assert.That(store.Watches.FellBehindCount, Is.GreaterThan(0));
    }

    [Test]
    public async Task AWatcherThatNeverReadsNeverBlocksTheWriter()
    {
        var options = new MvccStoreOptions { Durability = MvccDurability.NoSync, Watch = new WatchOptions { MaxBufferedEvents = 1 } };
        await using var store = OpenOn(new FaultInjectingFileSystem(22), options);
        await using var watch = store.Watch(Prefix("k"));
        var writes = Task.Run(async () =>
        {
            for (int i = 0; i < 5_000; i++)
            {
                await store.PutAsync(new PutRequest { Key = B($"k{i % 7}"), Value = B("v") });
            }
        });
        writes.WaitOrFail("5,000 writes while a watcher reads nothing");
        await using var responses = watch.GetAsyncEnumerator();
        Assert.That(responses.EventsThrough(store.Revision, "the backlog"), Has.Count.EqualTo(5_000));
    }

    [Test]
    public async Task AWatcherWhoseHistoryIsCompactedWhileItLagsEndsWithTheCompactedErrorAfterItsBuffer()
    {
        var options = new MvccStoreOptions { Watch = new WatchOptions { MaxBufferedEvents = 4 } };
        await using var store = OpenOn(new FaultInjectingFileSystem(23), options);
        await using var watch = store.Watch(Key("a"));
        for (int i = 0; i < 100; i++)
        {
            store.Put("a", $"{i}");
        }

        store.Compact(50);
        await using var responses = watch.GetAsyncEnumerator();
        Assert.That(responses.Next("the buffered events").Events.Select(e => e.Kv.ModRevision), Is.EqualTo(new long[] { 2, 3, 4, 5 }));
        var error = Assert.ThrowsAsync<RevisionCompactedException>(async () => await responses.MoveNextAsync())!;
        Assert.That((error.CompactRevision, error.RequestedRevision), Is.EqualTo((50L, 6L)));
        Assert.That(store.Watches.SyncedCount, Is.Zero);
    }

    [Test]
    public async Task TenThousandWatchersOnDistinctKeysEachReceiveTheirOwnEvent()
    {
        const int Watchers = 10_000;
        await using var store = OpenOn(new FaultInjectingFileSystem(24), new MvccStoreOptions { Durability = MvccDurability.NoSync });
        var watches = Enumerable.Range(0, Watchers).Select(i => store.Watch(Key($"w/{i:D5}"))).ToList();
        var consumers = watches.Select((watch, i) => Task.Run(async () =>
        {
            await using var responses = watch.GetAsyncEnumerator();
            Assert.That(await responses.MoveNextAsync(), Is.True);
            return responses.Current.Events.Single();
        })).ToList();
        Assert.That(store.Watches.SyncedCount, Is.EqualTo(Watchers));

        var puts = Enumerable.Range(0, Watchers).Select(i => store.PutAsync(new PutRequest { Key = B($"w/{i:D5}"), Value = B($"value {i}") }).AsTask()).ToList();
        Task.WhenAll(puts).WaitOrFail("10,000 puts");
        var received = Task.WhenAll(consumers).ResultOrFail("10,000 watchers' events");
        for (int i = 0; i < Watchers; i++)
        {
            Assert.That((S(received[i].Kv.Key), S(received[i].Kv.Value)), Is.EqualTo(($"w/{i:D5}", $"value {i}")), $"watcher {i}");
        }

        Assert.That(store.Watches.SyncedCount, Is.Zero, "each watcher left the index when its loop ended");
    }
}
