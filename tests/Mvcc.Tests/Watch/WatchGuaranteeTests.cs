using System.Text;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Watch;

/// <summary>
/// etcd's watch guarantees checked against an independent model of the store's history: under
/// random puts, deletes, range deletes, transactions and compactions, watchers of every kind (key,
/// range, prefix, from-key; from now or a past revision; filters; previous values) read fast, slowly
/// (far behind the writer, with tiny buffers, so they fall out of the live path and catch up from
/// history), stop and resume from their last revision + 1, or cancel. Every watcher's events equal
/// the history filtered by its range from its start, in order, with no gap, no duplicate and no
/// revision split across responses; one whose history was compacted away ends with the compacted
/// error past its position; every watch is released at the end. Seeds: WATCH_SEED replays one,
/// WATCH_SOAK_SEEDS=N runs N.
/// </summary>
public sealed class WatchGuaranteeTests
{
    private const int Writes = 300;

    private static readonly string[] KeySpace = [.. Enumerable.Range(0, 12).Select(i => $"k{i:D2}"), .. Enumerable.Range(0, 6).Select(i => $"p/{i}")];

    private enum Behaviour
    {
        Fast,
        Slow,
        Resumed,
        Cancelled,
    }

    private static IEnumerable<TestCaseData> Modes() =>
    [
        new TestCaseData(MvccDurability.Synced).SetArgDisplayNames("synced"),
        new TestCaseData(MvccDurability.NoSync).SetArgDisplayNames("no-sync"),
    ];

    [TestCaseSource(nameof(Modes))]
    public async Task EveryWatcherReceivesExactlyTheHistoryOfItsRangeUnderRandomWritesAndCompactions(MvccDurability durability)
    {
        foreach (int seed in TestSeeds.Choose("WATCH_SEED", "WATCH_SOAK_SEEDS", first: 1, defaultCount: 3))
        {
            TestContext.Out.WriteLine($"seed {seed}; replay with WATCH_SEED={seed}");
            await RunAsync(seed, durability);
        }
    }

    private static async Task RunAsync(int seed, MvccDurability durability)
    {
        var random = new Random(seed);
        var options = new MvccStoreOptions
        {
            Durability = durability,
            BatchLimit = random.Next(1, 20),
            CompactionBatchLimit = random.Next(1, 10),
            Watch = new WatchOptions { MaxBufferedEvents = random.Next(1, 8) },
        };
        await using var store = OpenOn(new FaultInjectingFileSystem(seed), options);
        var model = new WatchHistoryModel();
        var run = new RunState();
        var consumers = new List<(Plan Plan, Task<Observed> Task)>();
        for (int i = 0; i < Writes; i++)
        {
            if (random.Next(100) < 8)
            {
                var plan = NewPlan(random, model, store, consumers.Count);
                consumers.Add((plan, Task.Run(() => ConsumeAsync(store, plan, run))));
            }

            await WriteAsync(store, model, random);
            if (i % 4 == 3)
            {
                foreach (var (plan, _) in consumers)
                {
                    plan.SlowGate.Release();
                }
            }
        }

        run.FinalRevision = model.Revision;
        Volatile.Write(ref run.WritesDone, true);
        foreach (var (plan, _) in consumers)
        {
            // Wake every consumer: a slow one waiting for its turn, and any waiting for an event that
            // will not come (it asks for progress itself from now on).
            plan.SlowGate.Release();
            Volatile.Read(ref plan.Current)?.RequestProgress();
        }

        foreach (var (plan, task) in consumers)
        {
            var observed = task.ResultOrFail($"watcher {plan}");
            Check(plan, observed, model, run.FinalRevision, store.CompactRevision);
        }

        Assert.That(store.Watches.SyncedCount, Is.Zero, "every watch was released");
        var outcomes = consumers.Select(c => c.Task.Result).ToList();
        TestContext.Out.WriteLine(
            $"  {consumers.Count} watchers checked over {model.Events.Count} events up to revision {model.Revision}, compacted at {store.CompactRevision}; " +
            $"fell behind {store.Watches.FellBehindCount} times; {store.Watches.SpanBatchCount} batches staged as spans; {outcomes.Count(o => o.End is not null)} ended compacted, {outcomes.Count(o => o.Cancelled)} cancelled, {outcomes.Sum(o => o.Segments - 1)} resumptions");
    }

    private static Plan NewPlan(Random random, WatchHistoryModel model, MvccStore store, int number)
    {
        var (key, end, matches, name) = random.Next(4) switch
        {
            0 => (KeySpace[random.Next(KeySpace.Length)], (string?)null, (Func<string, bool>?)null, "key"),
            1 => ("p/", "p0", null, "prefix"),
            2 => ("k03", "k09", null, "range"),
            _ => ("k05", "\0", null, "from-key"),
        };
        matches = name switch
        {
            "key" => k => k == key,
            "prefix" => k => k.StartsWith("p/", StringComparison.Ordinal),
            "range" => k => string.CompareOrdinal(k, "k03") >= 0 && string.CompareOrdinal(k, "k09") < 0,
            _ => k => string.CompareOrdinal(k, "k05") >= 0,
        };
        long low = Math.Max(1, store.CompactRevision + 1);
        long start = random.Next(2) == 0 || low > model.Revision ? 0 : random.NextInt64(low, model.Revision + 1);
        var request = new WatchRequest
        {
            Key = B(key),
            RangeEnd = end is null ? default : end == "\0" ? KeyRange.AllKeysFrom() : B(end),
            StartRevision = start,
            NoPut = random.Next(8) == 0,
            NoDelete = random.Next(8) == 0,
            PrevKv = random.Next(3) == 0,

            // Every other watcher reuses its events (not drawn from the seed's sequence, so a seed
            // replays the same writes and watchers as before the option existed).
            ReuseEvents = number % 2 == 1,
        };
        return new Plan($"#{number} {name} {key} from {start}{(request.ReuseEvents ? " reusing" : string.Empty)}", request, matches, (Behaviour)random.Next(4), random.Next(1, 6));
    }

    private static async Task WriteAsync(MvccStore store, WatchHistoryModel model, Random random)
    {
        string AnyKey() => KeySpace[random.Next(KeySpace.Length)];
        int choice = random.Next(100);
        if (choice < 55)
        {
            string key = AnyKey();
            string value = $"v{random.Next(1000)}";
            await store.PutAsync(new PutRequest { Key = B(key), Value = B(value) });
            model.Apply([(key, value)], [], deletesFirst: false);
        }
        else if (choice < 67)
        {
            string key = AnyKey();
            await store.DeleteRangeAsync(new DeleteRangeRequest { Key = B(key) });
            model.Apply([], [(key, null)], deletesFirst: true);
        }
        else if (choice < 75)
        {
            var (from, to) = random.Next(2) == 0 ? ("p/", "p0") : ("k02", "k07");
            await store.DeleteRangeAsync(new DeleteRangeRequest { Key = B(from), RangeEnd = B(to) });
            model.Apply([], [(from, to)], deletesFirst: true);
        }
        else if (choice < 95)
        {
            var keys = KeySpace.OrderBy(_ => random.Next()).Take(random.Next(2, 5)).ToList();
            var puts = keys.Skip(1).Select(k => (k, (string?)$"t{random.Next(1000)}")).ToList();
            string deleted = keys[0];
            bool deleteFirst = random.Next(2) == 0;
            var putOps = puts.Select(p => RequestOp.Put(new PutRequest { Key = B(p.k), Value = B(p.Item2!) })).ToList();
            var deleteOp = RequestOp.DeleteRange(new DeleteRangeRequest { Key = B(deleted) });
            await store.TxnAsync(new TxnRequest { Success = deleteFirst ? [deleteOp, .. putOps] : [.. putOps, deleteOp] });
            model.Apply(puts, [(deleted, null)], deleteFirst);
        }
        else if (model.Revision - 20 > store.CompactRevision)
        {
            long at = random.NextInt64(Math.Max(store.CompactRevision + 1, 1), model.Revision - 19);
            await store.CompactAsync(at, physical: random.Next(2) == 0);
        }

        Assert.That(store.Revision, Is.EqualTo(model.Revision), "the store and the model agree on the revision");
    }

    private static async Task<Observed> ConsumeAsync(MvccStore store, Plan plan, RunState run)
    {
        var observed = new Observed();
        long start = plan.Request.StartRevision;
        while (true)
        {
            var request = new WatchRequest { Key = plan.Request.Key, RangeEnd = plan.Request.RangeEnd, StartRevision = start, NoPut = plan.Request.NoPut, NoDelete = plan.Request.NoDelete, PrevKv = plan.Request.PrevKv, ReuseEvents = plan.Request.ReuseEvents };
            using var cancel = new CancellationTokenSource();
            var watch = store.Watch(request);
            Volatile.Write(ref plan.Current, watch);
            observed.Segments++;
            if (observed.Segments == 1)
            {
                observed.StartRevision = watch.StartRevision;
                observed.LastRevision = watch.StartRevision - 1;
            }

            var responses = watch.GetAsyncEnumerator(cancel.Token);
            int taken = 0;
            bool resume = false;
            try
            {
                while (!resume)
                {
                    if (plan.Behaviour == Behaviour.Slow && !Volatile.Read(ref run.WritesDone))
                    {
                        await plan.SlowGate.WaitAsync();
                    }

                    bool done = Volatile.Read(ref run.WritesDone);
                    if (done && observed.LastRevision >= run.FinalRevision)
                    {
                        return observed;
                    }

                    if (done)
                    {
                        watch.RequestProgress();
                    }

                    if (!await responses.MoveNextAsync())
                    {
                        throw new InvalidOperationException($"watcher {plan} ended without a reason");
                    }

                    // A reusing watch's response is valid until the next MoveNextAsync: copied now.
                    observed.Responses.Add(plan.Request.ReuseEvents ? Copy(responses.Current) : responses.Current);
                    observed.LastRevision = Math.Max(observed.LastRevision, responses.Current.Header.Revision);
                    taken++;
                    if (plan.Behaviour == Behaviour.Resumed && taken == plan.StopAfter && !done && observed.Segments < 4)
                    {
                        resume = true;
                        start = observed.LastRevision + 1;
                    }
                    else if (plan.Behaviour == Behaviour.Cancelled && taken == plan.StopAfter)
                    {
                        await cancel.CancelAsync();
                        try
                        {
                            await responses.MoveNextAsync();
                            Assert.Fail($"watcher {plan}: a cancelled enumeration went on");
                        }
                        catch (OperationCanceledException)
                        {
                            observed.Cancelled = true;
                            return observed;
                        }
                    }
                }
            }
            catch (RevisionCompactedException e)
            {
                observed.End = e;
                return observed;
            }
            finally
            {
                await responses.DisposeAsync();
                watch.Dispose();
            }
        }
    }

    /// <summary>A deep copy of <paramref name="response"/>: its own events, key-values and bytes.</summary>
    private static WatchResponse Copy(WatchResponse response)
    {
        static KeyValue? CopyKv(KeyValue? kv) => kv is null ? null : new KeyValue
        {
            Key = kv.Key.ToArray(),
            Value = kv.Value.ToArray(),
            CreateRevision = kv.CreateRevision,
            ModRevision = kv.ModRevision,
            Version = kv.Version,
            Lease = kv.Lease,
        };

        return new WatchResponse
        {
            Header = response.Header,
            Events = [.. response.Events.Select(e => new WatchEvent { Type = e.Type, Kv = CopyKv(e.Kv)!, PrevKv = CopyKv(e.PrevKv) })],
        };
    }

    private static void Check(Plan plan, Observed observed, WatchHistoryModel model, long finalRevision, long compactRevision)
    {
        string who = $"watcher {plan} ({plan.Behaviour}, {observed.Segments} segment(s))";
        long previous = observed.StartRevision - 1;
        var delivered = new List<WatchEvent>();
        foreach (var response in observed.Responses)
        {
            Assert.That(response.Header.Revision, Is.GreaterThanOrEqualTo(previous), $"{who}: response revisions go back ({response})");
            foreach (var e in response.Events)
            {
                Assert.That(e.Kv.ModRevision, Is.GreaterThan(previous).And.LessThanOrEqualTo(response.Header.Revision),
                    $"{who}: an event outside (previous response, this response] — out of order, duplicated, or a revision split ({response})");
            }

            delivered.AddRange(response.Events);
            previous = response.Header.Revision;
        }

        var expected = model.Events
            .Where(e => e.Revision >= observed.StartRevision && e.Revision <= previous && plan.Matches(e.Key) && (e.IsDelete ? !plan.Request.NoDelete : !plan.Request.NoPut))
            .ToList();
        Assert.That(delivered.Select(Describe), Is.EqualTo(expected.Select(Describe)), $"{who}: the events differ from the history of its range; responses: {string.Join(" | ", observed.Responses.Take(20))}");
        if (plan.Request.PrevKv)
        {
            for (int i = 0; i < expected.Count; i++)
            {
                var got = delivered[i].PrevKv;
                var want = expected[i].Prev;
                if (got is null)
                {
                    Assert.That(want is null || want.Value.Mod < compactRevision || expected[i].Revision - 1 < compactRevision, Is.True, $"{who}: no previous value for {expected[i]} though it was not compacted");
                }
                else
                {
                    Assert.That((S(got.Value), got.ModRevision), Is.EqualTo(want), $"{who}: wrong previous value for {expected[i]}");
                }
            }
        }

        if (observed.End is { } compacted)
        {
            Assert.That(previous + 1, Is.LessThanOrEqualTo(compacted.CompactRevision), $"{who}: ended compacted at {compacted.CompactRevision} though its history from {previous + 1} was still there");
        }
        else if (!observed.Cancelled)
        {
            Assert.That(previous, Is.GreaterThanOrEqualTo(finalRevision), $"{who}: never got to the last revision");
        }
    }

    private static string Describe(WatchEvent e) => e.Type == WatchEventType.Delete
        ? $"delete {S(e.Kv.Key)}@{e.Kv.ModRevision}"
        : $"put {S(e.Kv.Key)}={S(e.Kv.Value)}@{e.Kv.ModRevision} c{e.Kv.CreateRevision} v{e.Kv.Version}";

    private static string Describe(WatchHistoryModel.ModelEvent e) => e.IsDelete
        ? $"delete {e.Key}@{e.Revision}"
        : $"put {e.Key}={e.Value}@{e.Revision} c{e.Create} v{e.Version}";

    private sealed record Plan(string Name, WatchRequest Request, Func<string, bool> Matches, Behaviour Behaviour, int StopAfter)
    {
        public SemaphoreSlim SlowGate { get; } = new(0);

        /// <summary>The consumer's open watch, for the writer to wake at the end.</summary>
        public WatchStream? Current;

        public override string ToString() => Name;
    }

    private sealed class Observed
    {
        public List<WatchResponse> Responses { get; } = [];

        public long StartRevision { get; set; }

        public long LastRevision { get; set; }

        public int Segments { get; set; }

        public bool Cancelled { get; set; }

        public RevisionCompactedException? End { get; set; }
    }

    private sealed class RunState
    {
        public bool WritesDone;
        public long FinalRevision;
    }
}
