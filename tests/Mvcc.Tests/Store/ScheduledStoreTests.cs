using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using Microsoft.Extensions.Time.Testing;

namespace EmbeddedRaft.Mvcc.Tests.Store;

/// <summary>
/// The MVCC store in deterministic mode (<see cref="MvccStoreOptions.Scheduler"/>): no writer
/// thread; its writer, timers and continuations run only when the test runs the scheduler, on the
/// test's thread, and its batch interval follows the store's clock. The behaviours of the normal
/// mode hold: group commit when synced, batches by time when not, compaction in steps between
/// writes, watches, lease expiry, snapshot images, and a clean stop.
/// </summary>
public sealed class ScheduledStoreTests
{
    private static readonly DateTimeOffset Epoch = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static IEnumerable<TestCaseData> Modes() =>
    [
        new TestCaseData(MvccDurability.Synced).SetArgDisplayNames("synced"),
        new TestCaseData(MvccDurability.NoSync).SetArgDisplayNames("no-sync"),
    ];

    // The seeded tests run once per mode and seed: one seed by default, MVCC_SOAK_SEEDS of them in a
    // soak, or the one MVCC_SEED names.
    private static IEnumerable<TestCaseData> ModesAndSeeds() =>
        from seed in TestSeeds.Choose("MVCC_SEED", "MVCC_SOAK_SEEDS", first: 1, defaultCount: 1)
        from mode in new[] { MvccDurability.Synced, MvccDurability.NoSync }
        select new TestCaseData(mode, seed).SetArgDisplayNames(mode == MvccDurability.Synced ? "synced" : "no-sync", $"seed {seed}");

    [TestCaseSource(nameof(Modes))]
    public void AWriteIsAppliedOnlyWhenTheSchedulerRunsAndOnlyOnItsThread(MvccDurability durability)
    {
        using var run = new ScheduledRun(seed: 1, durability);
        var store = run.Open();
        var put = run.Scheduler.Run(async () => await store.PutAsync(new PutRequest { Key = Bytes("a"), Value = Bytes("1") }));

        Assert.That(put.IsCompleted, Is.False, "no thread applied the write before the scheduler ran");
        Assert.That(store.Revision, Is.EqualTo(1));
        run.Scheduler.RunUntilIdle();
        Assert.That(put.IsCompletedSuccessfully, Is.True, "the write is answered once the scheduler ran");
        Assert.That(put.Result.Header.Revision, Is.EqualTo(2));
        Assert.That(store.Range(new RangeRequest { Key = Bytes("a") }).Kvs[0].Value.ToArray(), Is.EqualTo(Bytes("1")));

        run.Stop(store);
        Assert.That(run.OffThread, Is.Empty, "work ran off the scheduler's thread");
    }

    [Test]
    public void ANoSyncBatchCommitsWhenTheStoresClockPassesTheBatchInterval()
    {
        using var run = new ScheduledRun(seed: 2, MvccDurability.NoSync);
        var store = run.Open(o => o with { BatchInterval = TimeSpan.FromMilliseconds(100) });
        run.Scheduler.Run(async () => await store.PutAsync(new PutRequest { Key = Bytes("a"), Value = Bytes("1") }));
        run.Scheduler.RunUntilIdle();
        int writesBefore = run.StoreFileWrites;
        int flushesBefore = run.StoreFileFlushes;

        run.Time.Advance(TimeSpan.FromMilliseconds(99));
        run.Scheduler.RunUntilIdle();
        Assert.That(run.StoreFileWrites, Is.EqualTo(writesBefore), "the batch is still open 99 ms in");

        run.Time.Advance(TimeSpan.FromMilliseconds(1));
        run.Scheduler.RunUntilIdle();
        Assert.That(run.StoreFileWrites, Is.GreaterThan(writesBefore), "the batch was committed when its interval passed on the store's clock");
        Assert.That(run.StoreFileFlushes, Is.EqualTo(flushesBefore), "a no-sync commit does not flush");

        run.Stop(store);
        Assert.That(run.OffThread, Is.Empty, "work ran off the scheduler's thread");
    }

    [Test]
    public void SyncedWritesQueuedTogetherShareOneFlushAndAreAnsweredAfterIt()
    {
        using var run = new ScheduledRun(seed: 3, MvccDurability.Synced);
        var store = run.Open();
        var order = new List<string>();
        run.Disk.BeforeEntering += (kind, path) =>
        {
            if (kind == FaultOperationKind.Flush && path.EndsWith("mvcc.db", StringComparison.Ordinal))
            {
                order.Add("flush");
            }
        };
        var puts = Enumerable.Range(0, 3).Select(i => run.Scheduler.Run(async () =>
        {
            var response = await store.PutAsync(new PutRequest { Key = Bytes($"k{i}"), Value = Bytes("v") });
            order.Add($"answered {response.Header.Revision}");
            return response;
        })).ToList();
        run.Scheduler.RunUntilIdle();

        Assert.That(puts.All(p => p.IsCompletedSuccessfully), Is.True);
        int flushes = order.Count(o => o == "flush");
        Assert.That(order.Skip(flushes), Is.EqualTo(new[] { "answered 2", "answered 3", "answered 4" }), "every flush came before the first answer, and the answers are in order");

        order.Clear();
        run.Scheduler.Run(async () => await store.PutAsync(new PutRequest { Key = Bytes("lone"), Value = Bytes("v") }));
        run.Scheduler.RunUntilIdle();
        Assert.That(flushes, Is.EqualTo(order.Count(o => o == "flush")), "the three writes shared one commit: as many flushes as one lone write's");

        run.Stop(store);
        Assert.That(run.OffThread, Is.Empty, "work ran off the scheduler's thread");
    }

    [TestCaseSource(nameof(Modes))]
    public void APhysicalCompactionRunsInStepsBetweenWritesAndCompletes(MvccDurability durability)
    {
        using var run = new ScheduledRun(seed: 4, durability);
        var store = run.Open(o => o with { CompactionBatchLimit = 2 });
        for (int i = 0; i < 20; i++)
        {
            var put = new PutRequest { Key = Bytes($"k{i % 5}"), Value = Bytes($"{i}") };
            run.Scheduler.Run(async () => await store.PutAsync(put));
        }

        run.Scheduler.RunUntilIdle();
        var compaction = run.Scheduler.Run(async () => await store.CompactAsync(15, physical: true));
        var during = run.Scheduler.Run(async () => await store.PutAsync(new PutRequest { Key = Bytes("late"), Value = Bytes("x") }));
        long tasks = run.Scheduler.ExecutedTasks;

        // No-sync: the write behind the compaction opens a batch, and compaction steps wait for its commit (by time).
        run.Advance(durability == MvccDurability.NoSync ? MvccStoreOptions.DefaultBatchInterval : TimeSpan.Zero);

        Assert.That(compaction.IsCompletedSuccessfully, Is.True, "the physical compaction finished");
        Assert.That(during.IsCompletedSuccessfully, Is.True, "the write queued behind it was applied");
        Assert.That(run.Scheduler.ExecutedTasks - tasks, Is.GreaterThan(5), "the compaction ran as several pump tasks (one step each), not in one");
        Assert.That(() => store.Range(new RangeRequest { Key = Bytes("k"), RangeEnd = Bytes("l"), Revision = 14 }), Throws.InstanceOf<RevisionCompactedException>());
        Assert.That(store.Range(new RangeRequest { Key = Bytes("k"), RangeEnd = Bytes("l"), Revision = 15 }).Count, Is.EqualTo(5));

        run.Stop(store);
        Assert.That(run.OffThread, Is.Empty, "work ran off the scheduler's thread");
    }

    [Test]
    public void LeasesExpireAndWatchesDeliverOnTheSchedulerByTheStoresClock()
    {
        using var run = new ScheduledRun(seed: 5, MvccDurability.NoSync);
        var store = run.Open(o => o with { Leases = o.Leases with { TimeProvider = run.Time, ExpiryCheckInterval = TimeSpan.FromMilliseconds(500) } });
        var events = new List<string>();
        using var stop = new CancellationTokenSource();
        var watch = run.Scheduler.Run(async () =>
        {
            try
            {
                await foreach (var response in store.WatchAsync(new WatchRequest { Key = Bytes("k"), RangeEnd = Bytes("l") }, stop.Token))
                {
                    events.AddRange(response.Events.Select(e => $"{e.Type} {Encoding.UTF8.GetString(e.Kv.Key.Span)}@{e.Kv.ModRevision}"));
                }
            }
            catch (OperationCanceledException)
            {
            }
        });
        var grant = run.Scheduler.Run(async () => await store.LeaseGrantAsync(2));
        run.Scheduler.RunUntilIdle();
        run.Scheduler.Run(async () => await store.PutAsync(new PutRequest { Key = Bytes("k1"), Value = Bytes("v"), Lease = grant.Result.Id }));
        run.Scheduler.RunUntilIdle();

        run.Advance(TimeSpan.FromMilliseconds(1900));
        Assert.That(store.Range(new RangeRequest { Key = Bytes("k1") }).Count, Is.EqualTo(1), "the lease has not expired 1.9 s into a 2 s TTL");
        run.Advance(TimeSpan.FromMilliseconds(700));
        Assert.That(store.Range(new RangeRequest { Key = Bytes("k1") }).Count, Is.Zero, "the lease expired on the store's clock and its key went with it");
        Assert.That(events, Is.EqualTo(new[] { "Put k1@2", "Delete k1@3" }));

        stop.Cancel();
        run.Scheduler.RunUntilIdle();
        Assert.That(watch.IsCompletedSuccessfully, Is.True, "the watch ended when cancelled");
        run.Stop(store);
        Assert.That(run.OffThread, Is.Empty, "work ran off the scheduler's thread");
    }

    [Test]
    public void AnImageCapturedOnTheSchedulerRestoresIntoAnotherStore()
    {
        using var run = new ScheduledRun(seed: 6, MvccDurability.NoSync);
        var source = run.Open();
        var target = run.Open(directory: "/other");
        run.ApplyPuts(source, 10, i => new PutRequest { Key = Bytes($"k{i % 3}"), Value = Bytes($"{i}") });

        using var bytes = run.WriteImage(source);
        var restored = run.Scheduler.Run(async () => await target.RestoreImageAsync(bytes, expectedConsistentIndex: 10));
        run.Scheduler.RunUntilIdle();

        Assert.That(restored.IsCompletedSuccessfully, Is.True, restored.Exception?.ToString());
        Assert.That(target.Revision, Is.EqualTo(source.Revision));
        Assert.That(target.HashKV().Hash, Is.EqualTo(source.HashKV().Hash));
        run.Stop(source);
        run.Stop(target);
        Assert.That(run.OffThread, Is.Empty, "work ran off the scheduler's thread");
    }

    [Test]
    public void ARestoreWaitsForAnOpenImageOfTheStoreWithoutBlockingTheThread()
    {
        using var run = new ScheduledRun(seed: 8, MvccDurability.NoSync);
        var store = run.Open();
        var other = run.Open(directory: "/other");
        run.ApplyPuts(other, 5, i => new PutRequest { Key = Bytes($"k{i}"), Value = Bytes("v") });
        run.Scheduler.Run(async () => await store.PutAsync(new PutRequest { Key = Bytes("mine"), Value = Bytes("v") }, 1));
        var incoming = run.WriteImage(other);

        // This store's own image stays open (a Raft snapshot still being written out, suspended in an await).
        var held = run.Scheduler.Run(() => Task.FromResult(store.CaptureImage()));
        run.Scheduler.RunUntilIdle();
        var restore = run.Scheduler.Run(async () => await store.RestoreImageAsync(incoming, expectedConsistentIndex: 5));
        run.Scheduler.RunUntilIdle();
        Assert.That(restore.IsCompleted, Is.False, "the swap waits while an image of the old file is open");
        Assert.That(store.Range(new RangeRequest { Key = Bytes("mine") }).Count, Is.EqualTo(1), "the old store still serves reads meanwhile");

        run.Scheduler.Run(async () => await held.Result.DisposeAsync());
        run.Scheduler.RunUntilIdle();
        Assert.That(restore.IsCompletedSuccessfully, Is.True, restore.Exception?.ToString());
        Assert.That(store.Revision, Is.EqualTo(other.Revision));
        Assert.That(store.Range(new RangeRequest { Key = Bytes("mine") }).Count, Is.Zero, "the restored state replaced the old one");

        incoming.Dispose();
        run.Stop(store);
        run.Stop(other);
        Assert.That(run.OffThread, Is.Empty, "work ran off the scheduler's thread");
    }

    [Test]
    public void StoppingOnTheSchedulerCommitsWhatWasAppliedWithoutBlocking()
    {
        using var run = new ScheduledRun(seed: 7, MvccDurability.NoSync);
        var store = run.Open();
        run.Scheduler.Run(async () => await store.PutAsync(new PutRequest { Key = Bytes("a"), Value = Bytes("1") }));
        run.Scheduler.RunUntilIdle();

        var stopping = store.DisposeAsync();
        Assert.That(stopping.IsCompletedSuccessfully, Is.True, "disposal ran the writer's last steps on this thread and returned");
        var reopened = run.Open();
        Assert.That(reopened.Revision, Is.EqualTo(2), "the stop committed (synced) the open batch");
        run.Stop(reopened);
        Assert.That(run.OffThread, Is.Empty, "work ran off the scheduler's thread");
    }

    [TestCaseSource(nameof(ModesAndSeeds))]
    public void RandomWorkRepeatsExactlyForTheSameSeed(MvccDurability durability, int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with MVCC_SEED={seed}");
        string first = RandomWork(seed, durability);
        string second = RandomWork(seed, durability);
        string other = RandomWork(seed + 1, durability);

        Assert.That(second, Is.EqualTo(first), $"seed {seed}: the same seed gave another sequence of disk calls and results");
        Assert.That(other, Is.Not.EqualTo(first), $"seed {seed}: another seed gave the same trace");
    }

    /// <summary>Seeded puts, deletes, txns and compactions, queued in bursts with the clock moving between them; returns the hash of every disk call and result.</summary>
    private static string RandomWork(int seed, MvccDurability durability)
    {
        using var run = new ScheduledRun(seed, durability);
        var random = new Random(seed);
        var trace = new List<string>();
        run.Disk.BeforeEntering += (kind, path) => trace.Add($"{run.Time.GetUtcNow():O} {kind} {path}");
        var store = run.Open(o => o with { BatchLimit = 4, CompactionBatchLimit = 2, BatchInterval = TimeSpan.FromMilliseconds(50) });
        for (int burst = 0; burst < 20; burst++)
        {
            int count = random.Next(1, 6);
            for (int i = 0; i < count; i++)
            {
                string key = $"k{random.Next(8)}";
                string value = $"{burst}.{i}";
                int choice = random.Next(10);
                bool physical = random.Next(2) == 0;
                run.Scheduler.Run(async () =>
                {
                    try
                    {
                        string outcome = choice switch
                        {
                            < 6 => $"put {key} rev {(await store.PutAsync(new PutRequest { Key = Bytes(key), Value = Bytes(value) })).Header.Revision}",
                            < 8 => $"delete {key} {(await store.DeleteRangeAsync(new DeleteRangeRequest { Key = Bytes(key) })).Deleted}",
                            < 9 => $"compact {(await store.CompactAsync(Math.Max(1, store.Revision - 3), physical)).Header.Revision}",
                            _ => $"txn {(await store.TxnAsync(new TxnRequest { Compare = [new Compare { Key = Bytes(key), Target = CompareTarget.Version, Result = CompareResult.Greater, Version = 0 }], Success = [RequestOp.DeleteRange(new DeleteRangeRequest { Key = Bytes(key) })] })).Succeeded}",
                        };
                        trace.Add(outcome);
                    }
                    catch (MvccException e)
                    {
                        trace.Add($"refused {e.GetType().Name}");
                    }

                    return 0;
                });
            }

            run.Advance(TimeSpan.FromMilliseconds(random.Next(0, 80)));
        }

        run.Stop(store);
        Assert.That(run.OffThread, Is.Empty, $"seed {seed}: work ran off the scheduler's thread");
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join("\n", trace))));
    }

    [TestCaseSource(nameof(Modes))]
    public void AQueuedPutHoldsNoReferenceToItsCallersRequestAndAnAnsweredOneNoneToItsKeyOrValue(MvccDurability durability)
    {
        // A pooled write op is old; holding the caller's young request would dirty a card per put
        // and keep the request alive while the put waits in the queue (WriteOp's remarks). The op
        // copies the request's fields instead: the request can be collected while the put is
        // queued, and the put still writes exactly the key, value and lease it asked for.
        using var run = new ScheduledRun(seed: 12, durability);
        var store = run.Open();
        var (put, request, key, value) = QueuePutFromAShortLivedRequest(store, "queued", "value-of-queued");
        CollectEverything();
        Assert.That(request.IsAlive, Is.False, "the queued put kept its caller's request alive (the store holds a reference to it)");
        Assert.That(key.IsAlive, Is.True, "the queued put no longer holds its key's memory, which it has not written yet");
        Assert.That(value.IsAlive, Is.True, "the queued put no longer holds its value's memory, which it has not written yet");

        run.Scheduler.RunUntilIdle();
        Assert.That(put.IsCompletedSuccessfully, Is.True, put.Exception?.ToString());
        Assert.That(put.Result.Header.Revision, Is.EqualTo(2));
        var kv = store.Range(new RangeRequest { Key = Bytes("queued") }).Kvs.Single();
        Assert.That(kv.Value.ToArray(), Is.EqualTo(Bytes("value-of-queued")));
        Assert.That((kv.Version, kv.CreateRevision, kv.ModRevision, kv.Lease), Is.EqualTo((1L, 2L, 2L, 0L)));

        // Answered and taken: the op went back to its pool (and this thread's slot) and holds no
        // slice of the caller's key or value any more.
        CollectEverything();
        Assert.That(key.IsAlive, Is.False, "the answered put's pooled op still holds its key's memory");
        Assert.That(value.IsAlive, Is.False, "the answered put's pooled op still holds its value's memory");

        // The pooled op, reused for a second put, writes that put's fields, not the first's.
        var second = run.Scheduler.Run(async () => await store.PutAsync(new PutRequest { Key = Bytes("queued"), Value = Bytes("second") }));
        run.Scheduler.RunUntilIdle();
        Assert.That(second.Result.Header.Revision, Is.EqualTo(3));
        kv = store.Range(new RangeRequest { Key = Bytes("queued") }).Kvs.Single();
        Assert.That(kv.Value.ToArray(), Is.EqualTo(Bytes("second")));
        Assert.That((kv.Version, kv.CreateRevision, kv.ModRevision), Is.EqualTo((2L, 2L, 3L)));

        run.Stop(store);
        Assert.That(run.OffThread, Is.Empty, "work ran off the scheduler's thread");
    }

    /// <summary>Queues a put from the test's thread (the scheduler not run: it waits in the writer's queue), keeping only weak references to its request, key and value.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static (Task<PutResponse> Put, WeakReference Request, WeakReference Key, WeakReference Value) QueuePutFromAShortLivedRequest(MvccStore store, string key, string value)
    {
        var keyBytes = Bytes(key);
        var valueBytes = Bytes(value);
        var request = new PutRequest { Key = keyBytes, Value = valueBytes };
        var put = store.PutAsync(request).AsTask();
        Assert.That(put.IsCompleted, Is.False, "the put waits for the scheduler");
        return (put, new WeakReference(request), new WeakReference(keyBytes), new WeakReference(valueBytes));
    }

    private static void CollectEverything()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    private static byte[] Bytes(string text) => Encoding.UTF8.GetBytes(text);

    /// <summary>One scheduler, one manual clock and one simulated disk, with the test's thread as the only one allowed to touch them.</summary>
    private sealed class ScheduledRun : IDisposable
    {
        private readonly int _threadId = Environment.CurrentManagedThreadId;
        private readonly List<string> _offThread = [];
        private readonly MvccDurability _durability;

        public ScheduledRun(int seed, MvccDurability durability)
        {
            _durability = durability;
            Disk = new FaultInjectingFileSystem(seed);
            Disk.BeforeEntering = (kind, path) =>
            {
                if (Environment.CurrentManagedThreadId != _threadId)
                {
                    lock (_offThread)
                    {
                        _offThread.Add($"{kind} {path} on thread {Environment.CurrentManagedThreadId}:\n{Environment.StackTrace}");
                    }
                }

                if (path.EndsWith("mvcc.db", StringComparison.Ordinal))
                {
                    StoreFileWrites += kind == FaultOperationKind.Write ? 1 : 0;
                    StoreFileFlushes += kind == FaultOperationKind.Flush ? 1 : 0;
                }
            };
        }

        public FakeTimeProvider Time { get; } = new(Epoch);

        public DeterministicTaskScheduler Scheduler { get; } = new();

        public FaultInjectingFileSystem Disk { get; }

        public int StoreFileWrites { get; private set; }

        public int StoreFileFlushes { get; private set; }

        public IReadOnlyList<string> OffThread => [.. _offThread, .. Scheduler.QueuedOffThread];

        public MvccStore Open(Func<MvccStoreOptions, MvccStoreOptions>? configure = null, string directory = "/store")
        {
            var options = new MvccStoreOptions { Durability = _durability, Scheduler = Scheduler, TimeProvider = Time };
            return MvccStore.Open(Disk, directory, configure?.Invoke(options) ?? options);
        }

        /// <summary>Queues <paramref name="count"/> puts on <paramref name="store"/> as a replicated store applies log entries 1 to <paramref name="count"/> (put i made by <paramref name="put"/>); they run when the scheduler runs.</summary>
        public void ApplyPuts(MvccStore store, int count, Func<int, PutRequest> put)
        {
            for (int i = 0; i < count; i++)
            {
                var request = put(i);
                ulong index = (ulong)(i + 1);
                Scheduler.Run(async () => await store.PutAsync(request, index));
            }
        }

        /// <summary>Runs the scheduler through what is queued and an image of <paramref name="store"/> captured and written out after it; returns the image's bytes, positioned at their start.</summary>
        public MemoryStream WriteImage(MvccStore store)
        {
            var bytes = new MemoryStream();
            var written = Scheduler.Run(async () =>
            {
                await using var image = store.CaptureImage();
                await image.WriteToAsync(bytes, CancellationToken.None);
                bytes.Position = 0;
            });
            Scheduler.RunUntilIdle();
            Assert.That(written.IsCompletedSuccessfully, Is.True, written.Exception?.ToString());
            return bytes;
        }

        /// <summary>Moves the clock in 10 ms steps, running the scheduler after each.</summary>
        public void Advance(TimeSpan duration)
        {
            Scheduler.RunUntilIdle();
            for (var moved = TimeSpan.Zero; moved < duration; moved += TimeSpan.FromMilliseconds(10))
            {
                Time.Advance(TimeSpan.FromMilliseconds(Math.Min(10, (duration - moved).TotalMilliseconds)));
                Scheduler.RunUntilIdle();
            }
        }

        public void Stop(MvccStore store)
        {
            Scheduler.RunUntilIdle();
            store.Dispose();
            Scheduler.RunUntilIdle();
        }

        public void Dispose()
        {
        }
    }
}
