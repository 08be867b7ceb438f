using System.Buffers.Binary;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Store;

/// <summary>
/// Readers against one writer: every read sees one consistent point of history (an invariant
/// every transaction keeps holds in every read, at the current and at past revisions, committed
/// to disk or still in the batch), revisions seen never go backwards, and a read never waits for
/// the writer's disk IO.
/// </summary>
public sealed class ConcurrencyTests
{
    private const int Accounts = 8;
    private const long Total = Accounts * 100;

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

    [TestCaseSource(nameof(ModesAndSeeds))]
    public async Task ReadersAlwaysSeeTheTransferInvariantWhileAWriterCommitsAndCompacts(MvccDurability durability, int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with MVCC_SEED={seed}");
        var options = new MvccStoreOptions { Durability = durability, BatchLimit = 5, CompactionBatchLimit = 2 };
        await using var store = OpenOn(new FaultInjectingFileSystem(seed), options);
        for (int i = 0; i < Accounts; i++)
        {
            await store.PutAsync(new PutRequest { Key = Account(i), Value = Amount(Total / Accounts) });
        }

        using var done = new CancellationTokenSource();
        var readers = Enumerable.Range(0, 2).Select(r => Task.Factory.StartNew(() => Read(store, seed * 10 + r, done.Token), TaskCreationOptions.LongRunning)).ToList();

        var random = new Random(seed);
        for (int i = 0; i < 400; i++)
        {
            // A transfer: both balances change in one transaction, guarded by the source's mod revision.
            int from = random.Next(Accounts);
            int to = (from + 1 + random.Next(Accounts - 1)) % Accounts;
            var source = store.Range(new RangeRequest { Key = Account(from) }).Kvs.Single();
            var target = store.Range(new RangeRequest { Key = Account(to) }).Kvs.Single();
            long amount = random.Next(0, 20);
            var txn = new TxnRequest
            {
                Compare = [new Compare { Key = Account(from), Target = CompareTarget.Mod, Result = CompareResult.Equal, ModRevision = source.ModRevision },
                           new Compare { Key = Account(to), Target = CompareTarget.Mod, Result = CompareResult.Equal, ModRevision = target.ModRevision }],
                Success = [RequestOp.Put(new PutRequest { Key = Account(from), Value = Amount(Value(source) - amount) }),
                           RequestOp.Put(new PutRequest { Key = Account(to), Value = Amount(Value(target) + amount) })],
            };
            Assert.That((await store.TxnAsync(txn)).Succeeded, Is.True, "the writer is the only writer, so its compare holds");
            if (i % 100 == 99)
            {
                await store.CompactAsync(store.Revision - 30);
            }
        }

        await done.CancelAsync();
        var checkedReads = readers.Select(task => task.ResultOrFail("reader")).ToList();
        TestContext.Out.WriteLine($"reads checked: {string.Join(", ", checkedReads)}");
        Assert.That(checkedReads, Has.All.GreaterThan(0));
    }

    [TestCaseSource(nameof(ModesAndSeeds))]
    public async Task SingleKeyReadsOnSeveralThreadsSeeTheValueOfTheirRevisionWhileBatchesCommit(MvccDurability durability, int seed)
    {
        // Ranges between two batch commits share one B+tree snapshot (SharedReadView): a read that
        // shares one begun before a commit, or begins one after it, must still find every value,
        // in the batch or in the B+tree, and never an older one than its revision's.
        TestContext.Out.WriteLine($"seed {seed}; replay with MVCC_SEED={seed}");
        const int Keys = 5;
        var options = new MvccStoreOptions { Durability = durability, BatchLimit = 3 };
        await using var store = OpenOn(new FaultInjectingFileSystem(seed), options);
        long allExist = 0;
        for (int k = 0; k < Keys; k++)
        {
            allExist = (await store.PutAsync(new PutRequest { Key = B($"k{k}"), Value = B($"k{k}:1") })).Header.Revision;
        }

        using var done = new CancellationTokenSource();
        var readers = Enumerable.Range(0, 3).Select(r => Task.Factory.StartNew(
            () =>
            {
                var random = new Random(seed * 10 + r);
                var lastVersion = new long[Keys];
                long reads = 0;
                while (!done.IsCancellationRequested || reads < 100)
                {
                    int k = random.Next(Keys);
                    long current = store.Revision;
                    bool past = random.Next(4) == 0;
                    // Every key exists from revision allExist on (the puts before the readers start).
                    var response = store.Get($"k{k}", past ? Math.Max(allExist, current - random.Next(30)) : 0);
                    Assert.That(response.Kvs, Has.Count.EqualTo(1), $"k{k} at revision {response.Header.Revision} (past: {past})");
                    var kv = response.Kvs[0];
                    Assert.That(S(kv.Value), Is.EqualTo($"k{k}:{kv.Version}"), $"k{k} at revision {response.Header.Revision}: the value of its version");
                    Assert.That(kv.ModRevision, Is.LessThanOrEqualTo(response.Header.Revision));
                    if (!past)
                    {
                        Assert.That(kv.Version, Is.GreaterThanOrEqualTo(lastVersion[k]), $"k{k}: a later read never sees an older version");
                        lastVersion[k] = kv.Version;
                    }

                    reads++;
                }

                return reads;
            },
            TaskCreationOptions.LongRunning)).ToList();

        var versions = Enumerable.Repeat(1L, Keys).ToArray();
        var random = new Random(seed);
        for (int i = 0; i < 1500; i++)
        {
            int k = random.Next(Keys);
            versions[k]++;
            await store.PutAsync(new PutRequest { Key = B($"k{k}"), Value = B($"k{k}:{versions[k]}") });
        }

        await done.CancelAsync();
        var checkedReads = readers.Select(task => task.ResultOrFail("reader")).ToList();
        TestContext.Out.WriteLine($"reads checked: {string.Join(", ", checkedReads)}");
        for (int k = 0; k < Keys; k++)
        {
            Assert.That(S(store.Get($"k{k}").Kvs.Single().Value), Is.EqualTo($"k{k}:{versions[k]}"), "the last write of each key");
        }
    }

    [Test]
    public void AReadCompletesWhileTheWriterIsStuckInAFlush()
    {
        var fs = new FaultInjectingFileSystem(5);
        using var store = OpenOn(fs);
        store.Put("a", "1");
        using var writerInFlush = new ManualResetEventSlim();
        using var releaseWriter = new ManualResetEventSlim();
        fs.BeforeEntering = (kind, _) =>
        {
            if (kind == FaultOperationKind.Flush && Environment.CurrentManagedThreadId != TestThread)
            {
                writerInFlush.Set();
                releaseWriter.Wait();
            }
        };
        TestThread = Environment.CurrentManagedThreadId;
        var put = store.PutAsync(new PutRequest { Key = B("a"), Value = B("2") }).AsTask();
        writerInFlush.WaitOrFail("the writer reaching its flush");

        // The put is applied but not durable: a synced write is not answered yet, yet reads go on.
        var read = Task.Factory.StartNew(() => store.Get("a"), TaskCreationOptions.LongRunning);
        var response = read.ResultOrFail("a read while the writer is held in a flush");
        Assert.That(put.IsCompleted, Is.False);
        Assert.That(response.Header.Revision, Is.EqualTo(3));
        Assert.That(S(response.Kvs.Single().Value), Is.EqualTo("2"));

        releaseWriter.Set();
        Assert.That(put.ResultOrFail("the put").Header.Revision, Is.EqualTo(3));
        fs.BeforeEntering = null;
    }

    private static int TestThread { get; set; }

    private static long Read(MvccStore store, int seed, CancellationToken done)
    {
        var random = new Random(seed);
        long lastRevision = 0;
        long reads = 0;
        while (!done.IsCancellationRequested || reads == 0)
        {
            long current = store.Revision;
            long at = random.Next(3) == 0 ? Math.Max(1, current - random.Next(40)) : 0;
            RangeResponse response;
            try
            {
                response = store.Range(new RangeRequest { Key = B("acct/"), RangeEnd = KeyRange.PrefixEnd(B("acct/")), Revision = at });
            }
            catch (RevisionCompactedException e) when (at != 0 && at < e.CompactRevision)
            {
                continue;
            }

            if (at == 0 && response.Kvs.Count == Accounts)
            {
                Assert.That(response.Header.Revision, Is.GreaterThanOrEqualTo(lastRevision), "revisions never go backwards");
                lastRevision = response.Header.Revision;
            }

            if (response.Kvs.Count == Accounts)
            {
                Assert.That(response.Kvs.Sum(Value), Is.EqualTo(Total), $"the sum of balances at revision {(at == 0 ? response.Header.Revision : at)}");
                reads++;
            }
        }

        return reads;
    }

    private static byte[] Account(int i) => B($"acct/{i}");

    private static byte[] Amount(long amount)
    {
        var bytes = new byte[8];
        BinaryPrimitives.WriteInt64BigEndian(bytes, amount);
        return bytes;
    }

    private static long Value(KeyValue kv) => BinaryPrimitives.ReadInt64BigEndian(kv.Value.Span);
}
