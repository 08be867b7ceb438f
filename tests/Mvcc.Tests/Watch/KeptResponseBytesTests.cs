using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;
using static EmbeddedRaft.Mvcc.Tests.Watch.WatchTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Watch;

/// <summary>
/// An ordinary watch's responses are the caller's to keep: however the consumer lays out its events'
/// keys and values (copies of the stored bytes, possibly sharing arrays), no later response, batch or
/// buffer reuse writes them again, so a caller that keeps every response reads exactly the written
/// bytes at the end.
/// </summary>
public sealed class KeptResponseBytesTests
{
    /// <summary>Values at least this long are rare in the test and larger than any small shared buffer a consumer might carve events from.</summary>
    private const int LargeValueBytes = 2048;

    private static IEnumerable<int> Seeds() => TestSeeds.Choose("WATCH_SEED", "WATCH_SOAK_SEEDS", first: 2451, defaultCount: 1);

    [TestCaseSource(nameof(Seeds))]
    public async Task ACallerKeepingEveryResponseOfALiveOrdinaryWatchReadsExactlyTheWrittenBytes(int seed)
    {
        // 3,000 puts (values of varied lengths, a few of 2-4 KiB) and 10 deletes, read along in
        // responses of up to 256 events while the writer goes on and reuses its batches' buffers:
        // every event is compared only after the last response was read, so bytes of a kept event
        // written again later (a reused batch buffer, a shared array carved again) would show.
        TestContext.Out.WriteLine($"seed {seed}; replay with WATCH_SEED={seed}");
        var random = new Random(seed);
        await using var store = OpenOn(new FaultInjectingFileSystem(seed), new MvccStoreOptions { Watch = new WatchOptions { MaxBufferedEvents = 100_000 } });
        await using var watch = store.Watch(Prefix("s/")).GetAsyncEnumerator();
        var expected = new List<string>();
        var kept = new List<WatchResponse>();
        var live = new HashSet<string>();
        for (int batch = 0; batch < 30; batch++)
        {
            var writes = new List<Task>();
            for (int i = 0; i < 100; i++)
            {
                string key = $"s/{random.Next(500)}";
                int length = random.Next(30) == 0 ? random.Next(LargeValueBytes, 2 * LargeValueBytes) : random.Next(0, 120);
                string value = string.Concat(Enumerable.Range(0, length).Select(_ => (char)('a' + random.Next(26))));
                writes.Add(store.PutAsync(new PutRequest { Key = B(key), Value = B(value) }).AsTask());
                expected.Add($"put {key}={value}");
                live.Add(key);
            }

            await Task.WhenAll(writes).WaitAsync(TimeSpan.FromMinutes(1));
            if (batch % 3 == 2)
            {
                string deleted = live.Order(StringComparer.Ordinal).ElementAt(random.Next(live.Count));
                store.Delete(deleted);
                live.Remove(deleted);
                expected.Add($"delete {deleted}");
            }

            kept.Add(watch.Next("a response while the writer goes on"));
        }

        long last = store.Revision;
        while (kept[^1].Header.Revision < last)
        {
            kept.Add(watch.Next("the rest"));
        }

        var events = kept.SelectMany(r => r.Events).ToList();
        Assert.That(events.Select(e => Show(e)[..Show(e).LastIndexOf('@')]), Is.EqualTo(expected), "every kept event holds the bytes written, in order");
        Assert.That(store.Watches.FellBehindCount, Is.Zero, "it stayed on the live path");
    }
}
