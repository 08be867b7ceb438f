using System.Text;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Watch;

/// <summary>
/// Session 24's catch-up in pieces (history read in responses of up to 256 events and 1 MiB of keys
/// and values, whole revisions, whatever <see cref="WatchOptions.MaxBufferedEvents"/> is) checked
/// from outside, through the public API only, against the test's own model of the writes (the keys'
/// create revisions, versions and values as each write must have left them, never a read of the
/// store): a watch opened live whose consumer lags, with a live buffer of 1, 2 or 3 events, over
/// revisions of 1 to 600 events (transactions of many puts, range deletes of many keys) and values
/// near 1 MiB (one revision alone past the byte bound), some revisions wholly outside its range.
/// Its events are exactly the model's, in order, none twice, each revision's in one response; and a
/// compaction racing the catch-up ends the watch with the compacted error carrying that compaction's
/// revision, after exactly the history below where the watch stood. Seeds: WATCH_SEED replays one,
/// WATCH_SOAK_SEEDS=N runs N (WATCH_FIRST_SEED moves the first).
/// </summary>
public sealed class LaggingWatchCatchUpTests
{
    private const int Writes = 120;
    private const int KeySpace = 800;
    private const int Mebibyte = 1 << 20;

    /// <summary>The response bound the watch documents (<see cref="WatchOptions.MaxBufferedEvents"/>): 256 events, but a larger revision alone.</summary>
    private const int EventsPerResponse = 256;

    private static IEnumerable<TestCaseData> Cases() =>
        from seed in TestSeeds.Choose("WATCH_SEED", "WATCH_SOAK_SEEDS", first: 2501, defaultCount: 1)
        from buffer in new[] { 1, 2, 3 }
        select new TestCaseData(seed, buffer).SetArgDisplayNames($"seed {seed}", $"buffer {buffer}");

    [TestCaseSource(nameof(Cases))]
    public async Task ALaggingWatchGetsEveryEventOnceWithEachRevisionWholeInOneResponse(int seed, int buffer)
    {
        TestContext.Out.WriteLine($"seed {seed}, MaxBufferedEvents {buffer}; replay with WATCH_SEED={seed}");
        var random = new Random(seed);
        await using var store = Open(seed, buffer);
        var model = new Model();
        bool reuse = random.Next(2) == 0;
        var consumer = new Consumer(store.Watch(Request(reuse)).GetAsyncEnumerator(), model);
        double readChance = 0.02 + (random.NextDouble() * 0.3);
        TestContext.Out.WriteLine($"reuse events {reuse}, the consumer reads a response before {readChance:P0} of the writes");
        for (int i = 0; i < Writes; i++)
        {
            if (random.NextDouble() < readChance && consumer.Behind)
            {
                await consumer.ReadAsync();
            }

            await WriteAsync(store, model, random, i);
        }

        while (consumer.Behind)
        {
            await consumer.ReadAsync();
        }

        TestContext.Out.WriteLine($"{model.Revision} revisions, {model.Events.Count} events in range in {model.RevisionsInRange} revisions (largest {model.LargestRevision} events), {consumer.Responses.Count} responses");
        Assert.That(store.Watches.FellBehindCount, Is.GreaterThan(0), "the premise: the watch's live buffer overflowed and it read from history");
        consumer.AssertDelivered(model.Events);
        await consumer.DisposeAsync();
    }

    [TestCaseSource(nameof(Cases))]
    public async Task ACompactionRacingTheCatchUpEndsTheWatchWithTheCompactedErrorCarryingItsRevision(int seed, int buffer)
    {
        TestContext.Out.WriteLine($"seed {seed}, MaxBufferedEvents {buffer}; replay with WATCH_SEED={seed}");
        var random = new Random(seed);
        await using var store = Open(seed, buffer);
        var model = new Model();
        var consumer = new Consumer(store.Watch(Request(reuse: random.Next(2) == 0)).GetAsyncEnumerator(), model);
        for (int i = 0; i < Writes; i++)
        {
            await WriteAsync(store, model, random, i);
        }

        // The consumer took nothing while the writes overflowed its buffer: it reads a few responses of
        // its catch-up, then a compaction at a revision it has not reached races the rest. Half the
        // time the consumer is held until the compaction is recorded (the error must come); otherwise
        // it reads on meanwhile on another thread and may pass the compaction's revision first.
        int before = random.Next(0, 4);
        for (int r = 0; r < before && consumer.Behind; r++)
        {
            await consumer.ReadAsync();
        }

        Assert.That(consumer.Behind, Is.True, "the premise: the watch has history left to read");
        long compactAt = random.Next(2) == 0 ? model.Revision : random.NextInt64(consumer.DeliveredThrough + 1, model.Revision + 1);
        bool held = random.Next(2) == 0;
        bool physical = random.Next(2) == 0;
        TestContext.Out.WriteLine($"{before} responses read (through revision {consumer.DeliveredThrough}); compaction at {compactAt} of {model.Revision} (physical {physical}), consumer {(held ? "held until it is recorded" : "reading meanwhile")}");
        long deliveredBefore = consumer.DeliveredThrough;
        Task<RevisionCompactedException?> rest;
        if (held)
        {
            await store.CompactAsync(compactAt, physical);
            rest = consumer.ReadToEndAsync();
        }
        else
        {
            rest = Task.Run(consumer.ReadToEndAsync);
            await store.CompactAsync(compactAt, physical);
        }

        var compacted = await rest.WaitAsync(Waits.Limit);
        TestContext.Out.WriteLine(compacted is null ? $"the watch read past {compactAt} first and delivered everything" : $"ended: {compacted.Message}");
        if (compacted is null)
        {
            // Without reading history, a watch has at most its live buffer to deliver: no more
            // revisions than it holds events (or one larger revision). A held consumer with more than
            // that left below the compaction must have read the history the compaction removed.
            int left = model.RevisionsInRangeBetween(deliveredBefore, compactAt);
            Assert.That(held && left > buffer, Is.False, $"a consumer held at revision {deliveredBefore}, {left} revisions in range below the compaction, was not told it was compacted");
            consumer.AssertDelivered(model.Events);
            return;
        }

        Assert.That(compacted.CompactRevision, Is.EqualTo(compactAt), "the compacted error carries the compaction's revision");
        Assert.That(compacted.RequestedRevision, Is.LessThanOrEqualTo(compactAt), "refused only for a revision the compaction may have removed");
        Assert.That(compacted.RequestedRevision, Is.GreaterThan(consumer.DeliveredThrough), "the revision refused is past the last the watch covered");
        consumer.AssertDelivered(model.Events.Where(e => e.Revision < compacted.RequestedRevision).ToList());
    }

    private static MvccStore Open(int seed, int buffer) => OpenOn(
        new FaultInjectingFileSystem(seed),
        new MvccStoreOptions
        {
            MaxTxnOps = 600,
            MaxRequestBytes = 4 * Mebibyte,
            CompactionBatchLimit = 50,
            Watch = new WatchOptions { MaxBufferedEvents = buffer },
        });

    private static WatchRequest Request(bool reuse) => new() { Key = B("w/"), RangeEnd = KeyRange.PrefixEnd(B("w/")), ReuseEvents = reuse };

    private static string InRange(int k) => $"w/{k:D3}";

    /// <summary>One write chosen by <paramref name="random"/>, applied to the model too; the store's answer must be the model's revision.</summary>
    private static async Task WriteAsync(MvccStore store, Model model, Random random, int i)
    {
        int dice = random.Next(100);
        long revision;
        if (dice < 30)
        {
            // A transaction of 1-600 puts (some outside the range): a revision of many events.
            int count = random.Next(4) == 0 ? random.Next(200, 601) : random.Next(1, 60);
            var keys = Enumerable.Range(0, KeySpace).OrderBy(_ => random.Next()).Take(count)
                .Select(k => random.Next(10) == 0 ? $"x/{k:D3}" : InRange(k)).ToList();
            var puts = keys.Select(k => (Key: k, Value: Encoding.UTF8.GetBytes($"t{i}:{k}"))).ToList();
            var response = await store.TxnAsync(new TxnRequest { Success = [.. puts.Select(p => RequestOp.Put(new PutRequest { Key = B(p.Key), Value = p.Value }))] });
            revision = response.Header.Revision;
            model.Apply(puts.Select(p => (p.Key, (byte[]?)p.Value)).ToList());
        }
        else if (dice < 42)
        {
            // A value near 1 MiB, either side of the byte bound of a piece.
            var (key, value) = (InRange(random.Next(KeySpace)), Large(random, Mebibyte - 4096 + random.Next(8192)));
            revision = (await store.PutAsync(new PutRequest { Key = B(key), Value = value })).Header.Revision;
            model.Apply([(key, value)]);
        }
        else if (dice < 47)
        {
            // Two or three large values in one revision: more than a piece's bytes, read alone.
            var puts = Enumerable.Range(0, KeySpace).OrderBy(_ => random.Next()).Take(random.Next(2, 4))
                .Select(k => (Key: InRange(k), Value: Large(random, random.Next(600_000, Mebibyte)))).ToList();
            revision = (await store.TxnAsync(new TxnRequest { Success = [.. puts.Select(p => RequestOp.Put(new PutRequest { Key = B(p.Key), Value = p.Value }))] })).Header.Revision;
            model.Apply(puts.Select(p => (p.Key, (byte[]?)p.Value)).ToList());
        }
        else if (dice < 60)
        {
            // A range delete: every live key in [from, to) deleted at one revision, or none and no revision.
            int from = random.Next(KeySpace);
            int to = Math.Min(KeySpace, from + random.Next(1, 400));
            var response = await store.DeleteRangeAsync(new DeleteRangeRequest { Key = B(InRange(from)), RangeEnd = B(InRange(to)) });
            revision = response.Header.Revision;
            var deleted = model.LiveBetween(InRange(from), InRange(to));
            Assert.That(response.Deleted, Is.EqualTo(deleted.Count), $"write {i}: the keys the range delete removed");
            model.Apply(deleted.Select(k => (k, (byte[]?)null)).ToList());
        }
        else if (dice < 70)
        {
            // Outside the watch's range: a revision it must not see.
            string key = $"x/{random.Next(50)}";
            revision = (await store.PutAsync(new PutRequest { Key = B(key), Value = B($"outside{i}") })).Header.Revision;
            model.Apply([(key, B($"outside{i}"))]);
        }
        else
        {
            string key = InRange(random.Next(KeySpace));
            revision = (await store.PutAsync(new PutRequest { Key = B(key), Value = B($"p{i}") })).Header.Revision;
            model.Apply([(key, B($"p{i}"))]);
        }

        Assert.That(revision, Is.EqualTo(model.Revision), $"write {i}: the store's revision is the model's");
    }

    private static byte[] Large(Random random, int length)
    {
        var value = new byte[length];
        random.NextBytes(value);
        return value;
    }

    /// <summary>An event as the consumer saw it, copied out of the response (a reusing watch overwrites its events on the next read).</summary>
    private sealed record Seen(WatchEventType Type, string Key, long Revision, long Create, long Version, byte[] Value, int Response)
    {
        public string Show() => $"{Type} {Key}@{Revision} (create {Create}, version {Version}, {Value.Length} B)";
    }

    /// <summary>
    /// The history of the writes as the test made them, independent of the store: each key's create
    /// revision, version and value, one revision per write that changed something, and the events in
    /// the watch's range ("w/") in order.
    /// </summary>
    private sealed class Model
    {
        private readonly SortedDictionary<string, (long Create, long Version, byte[] Value)> _live = new(StringComparer.Ordinal);

        public long Revision { get; private set; } = 1;

        public List<Seen> Events { get; } = [];

        public int RevisionsInRange { get; private set; }

        public int LargestRevision { get; private set; }

        /// <summary>The revision of the last event in range: the watch has something to deliver while it has not covered it.</summary>
        public long LastInRange { get; private set; }

        public int RevisionsInRangeBetween(long after, long through) => Events.Where(e => e.Revision > after && e.Revision <= through).Select(e => e.Revision).Distinct().Count();

        public List<string> LiveBetween(string from, string to) =>
            _live.Keys.Where(k => string.CompareOrdinal(k, from) >= 0 && string.CompareOrdinal(k, to) < 0).ToList();

        /// <summary>One write: puts (a value) and deletes (null) of distinct keys; a revision when anything changed.</summary>
        public void Apply(IReadOnlyList<(string Key, byte[]? Value)> changes)
        {
            if (changes.Count == 0)
            {
                return;
            }

            Revision++;
            int inRange = 0;
            foreach (var (key, value) in changes)
            {
                Seen seen;
                if (value is null)
                {
                    _live.Remove(key);
                    seen = new Seen(WatchEventType.Delete, key, Revision, 0, 0, [], -1);
                }
                else
                {
                    var next = _live.TryGetValue(key, out var current) ? (current.Create, current.Version + 1, value) : (Revision, 1, value);
                    _live[key] = next;
                    seen = new Seen(WatchEventType.Put, key, Revision, next.Item1, next.Item2, value, -1);
                }

                if (key.StartsWith("w/", StringComparison.Ordinal))
                {
                    Events.Add(seen);
                    inRange++;
                }
            }

            if (inRange > 0)
            {
                RevisionsInRange++;
                LargestRevision = Math.Max(LargestRevision, inRange);
                LastInRange = Revision;
            }
        }
    }

    /// <summary>The lagging watch's consumer: reads one response at a time, within the tests' bounded wait.</summary>
    private sealed class Consumer(IAsyncEnumerator<WatchResponse> watch, Model model) : IAsyncDisposable
    {
        public List<Seen> Delivered { get; } = [];

        public List<(long Header, int Events)> Responses { get; } = [];

        /// <summary>The header revision of the last response: every revision up to it is covered.</summary>
        public long DeliveredThrough { get; private set; }

        public bool Behind => DeliveredThrough < model.LastInRange;

        public async Task ReadAsync()
        {
            bool moved = await watch.MoveNextAsync().AsTask().WaitAsync(Waits.Limit);
            Assert.That(moved, Is.True, "the watch ended early");
            Take(watch.Current);
        }

        /// <summary>Reads until the watch has covered the model's last revision in range, or ends with the compacted error (returned).</summary>
        public async Task<RevisionCompactedException?> ReadToEndAsync()
        {
            try
            {
                while (Behind)
                {
                    await ReadAsync();
                }

                return null;
            }
            catch (RevisionCompactedException e)
            {
                return e;
            }
        }

        public void AssertDelivered(IReadOnlyList<Seen> expected)
        {
            Assert.That(Delivered.Select(e => e.Show()).ToList(), Is.EqualTo(expected.Select(e => e.Show()).ToList()), "every event of the range once, in order, as written");
            for (int i = 0; i < expected.Count; i++)
            {
                Assert.That(Delivered[i].Value.AsSpan().SequenceEqual(expected[i].Value), Is.True, $"event {i} ({expected[i].Show()}): its value as written");
            }

            var split = Delivered.GroupBy(e => e.Revision).Where(g => g.Select(e => e.Response).Distinct().Count() > 1).Select(g => g.Key).ToList();
            Assert.That(split, Is.Empty, "revisions split across responses");
            var tooLarge = Delivered.GroupBy(e => e.Response)
                .Where(g => g.Count() > EventsPerResponse && g.Select(e => e.Revision).Distinct().Count() > 1)
                .Select(g => $"response {g.Key}: {g.Count()} events of {g.Select(e => e.Revision).Distinct().Count()} revisions").ToList();
            Assert.That(tooLarge, Is.Empty, $"responses of several revisions above {EventsPerResponse} events");
        }

        public ValueTask DisposeAsync() => watch.DisposeAsync();

        private void Take(WatchResponse response)
        {
            int index = Responses.Count;
            Assert.That(response.Header.Revision, Is.GreaterThanOrEqualTo(DeliveredThrough), $"response {index}: its header revision went back");
            foreach (var e in response.Events)
            {
                Assert.That(e.Kv.ModRevision, Is.InRange(DeliveredThrough + 1, response.Header.Revision), $"response {index}: an event outside the revisions it covers");
                Delivered.Add(new Seen(
                    e.Type,
                    Encoding.UTF8.GetString(e.Kv.Key.Span),
                    e.Kv.ModRevision,
                    e.Type == WatchEventType.Put ? e.Kv.CreateRevision : 0,
                    e.Type == WatchEventType.Put ? e.Kv.Version : 0,
                    e.Type == WatchEventType.Put ? e.Kv.Value.ToArray() : [],
                    index));
            }

            Responses.Add((response.Header.Revision, response.Events.Count));
            DeliveredThrough = response.Header.Revision;
        }
    }
}
