using EmbeddedRaft.Mvcc.Watch;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;
using static EmbeddedRaft.Mvcc.Tests.Watch.WatchTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Watch;

/// <summary>
/// A live watcher's events are built by its consumer from the stored bytes the writer staged (slices
/// of the pending batches, held until decoded), not by the writer: the bytes stay exactly the
/// written ones however many batches the writer commits (and reuses the buffers of) before the
/// consumer reads them, whether the consumer reads along or only at the end; a change several
/// watchers take is built once and shared.
/// </summary>
public sealed class ConsumerDecodedEventsTests
{
    private static IEnumerable<TestCaseData> Modes() =>
    [
        new TestCaseData(MvccDurability.Synced).SetArgDisplayNames("synced"),
        new TestCaseData(MvccDurability.NoSync).SetArgDisplayNames("no-sync"),
    ];

    [TestCaseSource(nameof(Modes))]
    public async Task AConsumerReadingOnlyAfterManyBatchesGetsTheirExactEvents(MvccDurability durability)
    {
        // 60 batches (each write awaited alone is its own batch): more than a buffer may hold
        // (WatchHub.MaxHeldBatchesPerWatcher), so both the decoded and the writer-built path are taken.
        await using var store = OpenOn(new FaultInjectingFileSystem(41), new MvccStoreOptions { Durability = durability, Watch = new WatchOptions { MaxBufferedEvents = 10_000 } });
        store.Put("w/0", "before");
        await using var watch = store.Watch(Prefix("w/")).GetAsyncEnumerator();
        var expected = new List<string>();
        for (int batch = 0; batch < 60; batch++)
        {
            var writes = new List<Task<long>>();
            for (int i = 0; i < 5; i++)
            {
                string key = $"w/{(batch * 5 + i) % 7}";
                string value = $"value {batch}.{i} " + new string((char)('a' + (i % 26)), batch % 40);
                writes.Add(PutRevision(store.PutAsync(new PutRequest { Key = B(key), Value = B(value), Lease = 0 })));
                expected.Add($"put {key}={value}");
            }

            await Task.WhenAll(writes).WaitAsync(TimeSpan.FromMinutes(1));
            if (batch % 9 == 8)
            {
                string deleted = $"w/{batch % 7}";
                store.Delete(deleted);
                expected.Add($"delete {deleted}");
            }
        }

        var events = watch.EventsThrough(store.Revision, "every batch's events");
        Assert.That(events.Select(e => Show(e)[..Show(e).LastIndexOf('@')]), Is.EqualTo(expected), "every event, in order, with the bytes written");
        Assert.That(events.Select(e => e.Kv.ModRevision), Is.Ordered.Ascending);
        foreach (var e in events.Where(e => e.Type == WatchEventType.Put))
        {
            var stored = store.Get(S(e.Kv.Key), e.Kv.ModRevision).Kvs.Single();
            Assert.That((e.Kv.CreateRevision, e.Kv.Version, e.Kv.ModRevision, e.Kv.Lease), Is.EqualTo((stored.CreateRevision, stored.Version, stored.ModRevision, stored.Lease)), $"the event of revision {e.Kv.ModRevision} is the stored version");
        }

        Assert.That(store.Watches.FellBehindCount, Is.Zero, "it stayed on the live path");
    }

    [Test]
    public async Task ABufferOfManyEventsIsDeliveredInResponsesOfAtMostAPieceOfWholeRevisions()
    {
        // 1,000 events wait in the live buffer before the consumer reads: it gets them in responses of
        // at most WatchHub.MaxEventsPerResponse events of whole revisions (a 300-put transaction,
        // larger than a piece, in one), each carrying its last event's revision, the last one the store's.
        await using var store = OpenOn(new FaultInjectingFileSystem(43), new MvccStoreOptions { MaxTxnOps = 300, Watch = new WatchOptions { MaxBufferedEvents = 10_000 } });
        await using var watch = store.Watch(Prefix("p/")).GetAsyncEnumerator();
        for (int i = 0; i < 600; i++)
        {
            store.Put($"p/{i % 50}", $"v{i}");
        }

        store.Txn(new TxnRequest { Success = [.. Enumerable.Range(0, 300).Select(i => RequestOp.Put(new PutRequest { Key = B($"p/t{i}"), Value = B($"t{i}") }))] });
        long transaction = store.Revision;
        for (int i = 600; i < 700; i++)
        {
            store.Put($"p/{i % 50}", $"v{i}");
        }

        var responses = new List<WatchResponse>();
        do
        {
            responses.Add(watch.Next("the next piece"));
        }
        while (responses[^1].Header.Revision < store.Revision);

        var events = responses.SelectMany(r => r.Events).ToList();
        Assert.That(events.Select(e => S(e.Kv.Value)), Is.EqualTo(Enumerable.Range(0, 600).Select(i => $"v{i}").Concat(Enumerable.Range(0, 300).Select(i => $"t{i}")).Concat(Enumerable.Range(600, 100).Select(i => $"v{i}"))), "every event once, in order");
        Assert.That(responses, Has.Count.GreaterThanOrEqualTo(5), "1,000 events in pieces");
        Assert.That(responses.Where(r => r.Events.Count > WatchHub.MaxEventsPerResponse).Select(r => r.Events.Count), Is.EqualTo(new[] { 300 }), "only the transaction is larger than a piece");
        Assert.That(responses.Single(r => r.Events.Any(e => e.Kv.ModRevision == transaction)).Events.Select(e => e.Kv.ModRevision).Distinct(), Is.EqualTo(new[] { transaction }), "the transaction whole, alone");
        for (int i = 0; i < responses.Count - 1; i++)
        {
            Assert.That(responses[i].Header.Revision, Is.EqualTo(responses[i].Events[^1].Kv.ModRevision), $"response {i}: a piece carries its last event's revision");
            Assert.That(responses[i + 1].Events[0].Kv.ModRevision, Is.GreaterThan(responses[i].Header.Revision), $"response {i + 1}: no revision split");
        }

        Assert.That(responses[^1].Header.Revision, Is.EqualTo(store.Revision));
    }

    [Test]
    public async Task AConsumerReadingAlongWhileTheWriterReusesBatchBuffersGetsExactValues()
    {
        // The consumer decodes each batch while the writer fills the next ones; the batch buffers it
        // held go back to the writer after it and are written again: nothing it read may change.
        const int Batches = 150;
        const int PerBatch = 20;
        await using var store = OpenOn(new FaultInjectingFileSystem(42), new MvccStoreOptions { Watch = new WatchOptions { MaxBufferedEvents = 10_000 } });
        using var watch = store.Watch(Prefix("r/"));
        long last = long.MaxValue;
        var reader = Task.Run(async () =>
        {
            var seen = new List<(string Key, string Value)>();
            await foreach (var response in watch)
            {
                // Copied at once: a later reuse of the batch's bytes would show as a wrong value below.
                seen.AddRange(response.Events.Select(e => (S(e.Kv.Key), S(e.Kv.Value))));
                if (response.Header.Revision >= Volatile.Read(ref last))
                {
                    break;
                }
            }

            return seen;
        });

        var expected = new List<(string Key, string Value)>();
        for (int batch = 0; batch < Batches; batch++)
        {
            var writes = new List<Task<long>>();
            for (int i = 0; i < PerBatch; i++)
            {
                string key = $"r/{i:D2}";
                string value = $"{batch}:{i}:" + new string('x', (batch * 7 + i) % 90);
                writes.Add(PutRevision(store.PutAsync(new PutRequest { Key = B(key), Value = B(value) })));
                expected.Add((key, value));
            }

            await Task.WhenAll(writes).WaitAsync(TimeSpan.FromMinutes(1));
        }

        Volatile.Write(ref last, store.Revision);
        watch.RequestProgress(); // in case the consumer already has the last revision and waits for more
        var seen = reader.ResultOrFail("the reading consumer's events");
        Assert.That(seen, Is.EqualTo(expected), "every event, in order, with its own value");
    }

    [Test]
    public async Task AChangeSeveralWatchersTakeIsBuiltOnceAndShared()
    {
        await using var store = OpenOn(new FaultInjectingFileSystem(43));
        await using var first = store.Watch(Key("k")).GetAsyncEnumerator();
        await using var second = store.Watch(Prefix("k")).GetAsyncEnumerator();
        await using var other = store.Watch(Key("other")).GetAsyncEnumerator();
        store.Put("k", "shared");
        store.Put("other", "alone");

        var a = first.Next("the key watch").Events.Single();
        var b = second.Next("the prefix watch").Events.Single();
        Assert.That(b, Is.SameAs(a), "one event object for both watchers of the change");
        Assert.That(Show(a), Is.EqualTo("put k=shared@2"));
        Assert.That(Show(other.Next("the other key's watch").Events.Single()), Is.EqualTo("put other=alone@3"));
    }

    private static async Task<long> PutRevision(ValueTask<PutResponse> put) => (await put).Header.Revision;
}
