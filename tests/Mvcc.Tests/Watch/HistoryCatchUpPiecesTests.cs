using EmbeddedRaft.Mvcc.Watch;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;
using static EmbeddedRaft.Mvcc.Tests.Watch.WatchTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Watch;

/// <summary>
/// A watch catching up from history gets its missed revisions in responses of up to
/// <see cref="HistoryReader.MaxEventsPerRead"/> events or <see cref="HistoryReader.MaxBytesPerRead"/>
/// bytes of keys and values, whole revisions, whatever its live buffer's size
/// (<see cref="WatchOptions.MaxBufferedEvents"/>): a small buffer bounds the live events left
/// waiting for it, not how many responses and store reads its catch-up takes.
/// </summary>
public sealed class HistoryCatchUpPiecesTests
{
    private static IEnumerable<int> Seeds() => TestSeeds.Choose("WATCH_SEED", "WATCH_SOAK_SEEDS", first: 2401, defaultCount: 1);

    [TestCaseSource(nameof(Seeds))]
    public async Task AWatchWithATwoEventBufferCatchesUpFromHistoryInFullPiecesOfWholeRevisions(int seed)
    {
        // ~3,000 revisions under "h/" (single puts, deletes, transactions of 2-5 puts, one of 300)
        // mixed with writes outside the range, then a watch from revision 2 with a buffer of 2:
        // every event in order, each revision in one response, and every response but the last
        // full (the next revision would not have fit): not one response per couple of events.
        TestContext.Out.WriteLine($"seed {seed}; replay with WATCH_SEED={seed}");
        var random = new Random(seed);
        await using var store = OpenOn(new FaultInjectingFileSystem(seed), new MvccStoreOptions { MaxTxnOps = 300, Watch = new WatchOptions { MaxBufferedEvents = 2 } });
        var expected = new List<string>();
        var live = new List<string>();
        long largeTransaction = 0;
        for (int i = 0; i < 3_000; i++)
        {
            int dice = random.Next(20);
            if (i == 1_500)
            {
                store.Txn(new TxnRequest { Success = [.. Enumerable.Range(0, 300).Select(j => RequestOp.Put(new PutRequest { Key = B($"h/t{j}"), Value = B($"big{j}") }))] });
                largeTransaction = store.Revision;
                expected.AddRange(Enumerable.Range(0, 300).Select(j => $"put h/t{j}=big{j}@{largeTransaction}"));
            }
            else if (dice < 2)
            {
                store.Put($"x/{random.Next(50)}", $"outside{i}");
            }
            else if (dice < 4 && live.Count > 0)
            {
                string key = live[random.Next(live.Count)];
                live.Remove(key);
                store.Delete(key);
                expected.Add($"delete {key}@{store.Revision}");
            }
            else if (dice < 7)
            {
                var keys = Enumerable.Range(0, random.Next(2, 6)).Select(j => $"h/{i}-{j}").ToList();
                store.Txn(new TxnRequest { Success = [.. keys.Select(k => RequestOp.Put(new PutRequest { Key = B(k), Value = B($"v{i}") }))] });
                expected.AddRange(keys.Select(k => $"put {k}=v{i}@{store.Revision}"));
                live.AddRange(keys);
            }
            else
            {
                string key = $"h/{random.Next(200)}";
                store.Put(key, $"v{i}");
                expected.Add($"put {key}=v{i}@{store.Revision}");
                if (!live.Contains(key))
                {
                    live.Add(key);
                }
            }
        }

        await using var watch = store.Watch(Prefix("h/", start: 2)).GetAsyncEnumerator();
        var responses = new List<WatchResponse>();
        do
        {
            responses.Add(watch.Next("the next catch-up response"));
        }
        while (responses[^1].Header.Revision < store.Revision);

        Assert.That(responses.SelectMany(r => r.Events).Select(Show), Is.EqualTo(expected), "every event once, in order");
        var revisionsSeen = responses.SelectMany((r, index) => r.Events.Select(e => (e.Kv.ModRevision, index)).Distinct()).GroupBy(x => x.ModRevision);
        Assert.That(revisionsSeen.Where(g => g.Count() > 1).Select(g => g.Key), Is.Empty, "no revision split across responses");
        Assert.That(responses.Single(r => r.Events.Any(e => e.Kv.ModRevision == largeTransaction)).Events.Select(e => e.Kv.ModRevision).Distinct(), Is.EqualTo(new[] { largeTransaction }), "the 300-put transaction whole, alone");
        for (int i = 0; i < responses.Count; i++)
        {
            var events = responses[i].Events;
            if (events.Select(e => e.Kv.ModRevision).Distinct().Count() > 1)
            {
                Assert.That(events, Has.Count.LessThanOrEqualTo(HistoryReader.MaxEventsPerRead), $"response {i}: at most a piece, but for one larger revision alone");
            }

            if (i < responses.Count - 1)
            {
                long nextRevision = responses[i + 1].Events[0].Kv.ModRevision;
                int nextRevisionEvents = responses[i + 1].Events.Count(e => e.Kv.ModRevision == nextRevision);
                Assert.That(events.Count + nextRevisionEvents, Is.GreaterThan(HistoryReader.MaxEventsPerRead), $"response {i} of {responses.Count}: full (the next revision did not fit), not the buffer's 2 events");
            }
        }

        Assert.That(responses, Has.Count.LessThanOrEqualTo(2 * ((expected.Count / HistoryReader.MaxEventsPerRead) + 1)), $"{expected.Count} events in few responses");
    }

    [Test]
    public async Task ACatchUpOfLargeValuesComesInResponsesOfAboutAMebibyte()
    {
        // 60 puts of 100 KiB (~6 MiB) read from history by a watch with the default buffer (1,024
        // events, so the event bound does not stop them): each response holds as many as fit in
        // the byte bound, 10, not all 60 at once.
        const int ValueBytes = 100 * 1024;
        await using var store = OpenOn(new FaultInjectingFileSystem(91));
        for (int i = 0; i < 60; i++)
        {
            var value = new byte[ValueBytes];
            value.AsSpan().Fill((byte)('a' + (i % 26)));
            await store.PutAsync(new PutRequest { Key = B($"big/{i:D2}"), Value = value });
        }

        await using var watch = store.Watch(Prefix("big/", start: 2)).GetAsyncEnumerator();
        var responses = new List<WatchResponse>();
        do
        {
            responses.Add(watch.Next("the next catch-up response"));
        }
        while (responses[^1].Header.Revision < store.Revision);

        var events = responses.SelectMany(r => r.Events).ToList();
        Assert.That(events.Select(e => S(e.Kv.Key)), Is.EqualTo(Enumerable.Range(0, 60).Select(i => $"big/{i:D2}")), "every event once, in order");
        Assert.That(events.Select((e, i) => e.Kv.Value.Length == ValueBytes && e.Kv.Value.Span.IndexOfAnyExcept((byte)('a' + (i % 26))) < 0), Is.All.True, "each value as written");
        static long BytesOf(WatchEvent e) => e.Kv.Key.Length + e.Kv.Value.Length;
        for (int i = 0; i < responses.Count; i++)
        {
            long bytes = responses[i].Events.Sum(BytesOf);
            Assert.That(bytes, Is.LessThanOrEqualTo(HistoryReader.MaxBytesPerRead), $"response {i}: within the byte bound");
            if (i < responses.Count - 1)
            {
                Assert.That(bytes + BytesOf(responses[i + 1].Events[0]), Is.GreaterThan(HistoryReader.MaxBytesPerRead), $"response {i}: full (the next event did not fit)");
            }
        }
    }
}
