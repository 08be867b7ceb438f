using EmbeddedRaft.Mvcc.Tests.Model;
using EmbeddedRaft.Storage.BTree;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Mvcc.Tests.Store;

/// <summary>
/// A crash at every write and flush of the store's batch commits and of a physical compaction:
/// after the simulated machine restarts (unflushed writes kept, dropped or torn), the reopened
/// store equals the reference model after some prefix of the writes — every acknowledged write in
/// synced mode, at least everything synced in no-sync mode — and its consistent index names
/// exactly that prefix, never more.
/// </summary>
public sealed class CrashTests
{
    private const string Db = "/db";

    private static IEnumerable<int> Seeds() => TestSeeds.Choose("MVCC_SEED", "MVCC_SOAK_SEEDS", first: 1, defaultCount: 2);

    [TestCaseSource(nameof(Seeds))]
    public async Task SyncedWritesSurviveACrashAtEveryWriteAndFlush(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with MVCC_SEED={seed}");
        var options = new MvccStoreOptions();
        var complete = await RunWithoutCrashAsync(seed, options, syncEvery: 0);
        for (long crashAt = 1; crashAt <= complete.Operations; crashAt++)
        {
            await CrashAndCheckAsync(seed, options, syncEvery: 0, crashAt, complete, mustKeepEveryAcknowledged: true);
        }
    }

    /// <summary>
    /// Eight writes in flight at once, so group commits hold several writes and later writes queue
    /// behind a commit being written: every acknowledged write survives, and what survives is a
    /// prefix of the writes (up to the writes in flight at the crash beyond the acknowledged ones).
    /// How writes fall into batches depends on how the threads run, so a crash point names a
    /// different file call from run to run; every run must still recover a prefix.
    /// </summary>
    [TestCaseSource(nameof(Seeds))]
    public async Task SyncedWritesInFlightTogetherSurviveACrashAtEveryWriteAndFlush(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with MVCC_SEED={seed}");
        var options = new MvccStoreOptions();
        var complete = await RunWithoutCrashAsync(seed, options, syncEvery: 0, window: 8);
        for (long crashAt = 1; crashAt <= complete.Operations; crashAt++)
        {
            await CrashAndCheckAsync(seed, options, syncEvery: 0, crashAt, complete, mustKeepEveryAcknowledged: true, window: 8);
        }
    }

    [TestCaseSource(nameof(Seeds))]
    public async Task NoSyncBatchesSurviveACrashAtEveryWriteAndFlushUpToTheLastSync(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with MVCC_SEED={seed}");
        var options = new MvccStoreOptions { Durability = MvccDurability.NoSync, BatchLimit = 3, BatchInterval = MvccStoreOptions.MaxBatchInterval };
        var complete = await RunWithoutCrashAsync(seed, options, syncEvery: 7);
        for (long crashAt = 1; crashAt <= complete.Operations; crashAt++)
        {
            await CrashAndCheckAsync(seed, options, syncEvery: 7, crashAt, complete, mustKeepEveryAcknowledged: false);
        }
    }

    [TestCaseSource(nameof(Seeds))]
    public async Task APhysicalCompactionSurvivesACrashAtEveryWriteAndFlushAndResumes(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with MVCC_SEED={seed}");
        var options = new MvccStoreOptions { CompactionBatchLimit = 3 };

        // Count the compaction's operations once.
        var counting = new FaultInjectingFileSystem(seed);
        var (model, compactAt) = await PrepareForCompactionAsync(counting, seed, options);
        long before = counting.OperationCount;
        await using (var store = MvccStore.Open(counting, Db, options))
        {
            await store.CompactAsync(compactAt, physical: true);
        }

        long total = counting.OperationCount - before;
        Assert.That(total, Is.GreaterThan(10), "the compaction should take several commits");

        for (long crashAt = 1; crashAt <= total; crashAt++)
        {
            var fs = new FaultInjectingFileSystem(seed * 7919 + (int)crashAt);
            await PrepareForCompactionAsync(fs, seed, options);
            fs.CrashAfterOperation = fs.OperationCount + crashAt;
            var store = MvccStore.Open(fs, Db, options);
            try
            {
                await store.CompactAsync(compactAt, physical: true);
                Assert.Fail($"crash point {crashAt} of {total} was not reached");
            }
            catch (Exception e) when (e is SimulatedCrashException or IOException)
            {
            }

            DisposeAfterCrash(store);
            fs.Restart();
            await using var reopened = MvccStore.Open(fs, Db, options);
            string where = $"seed {seed}, crash after operation {crashAt} of the compaction's {total}";
            Assert.That(reopened.Revision, Is.EqualTo(model.Revision), where);
            Assert.That(reopened.CompactRevision, Is.AnyOf(-1L, compactAt), where);
            await reopened.WaitForCompactionsAsync();
            for (long at = Math.Max(1, reopened.CompactRevision); at <= model.Revision; at++)
            {
                Assert.That(Everything(reopened, at), Is.EqualTo(ModelEverything(model, at)), $"{where}: revision {at}");
            }

            if (reopened.CompactRevision == compactAt)
            {
                await reopened.DisposeAsync();
                Assert.That(StoredRevisionCount(fs), Is.EqualTo(ExpectedStoredAfterCompaction(model, compactAt)), $"{where}: revisions left in the B+tree");
            }
        }
    }

    // ------------------------------------------------------------------ workload

    /// <summary>
    /// Writes a seeded sequence of puts, deletes and txns, the i-th carrying consistent index i,
    /// keeping up to <paramref name="window"/> in flight (the queue applies them in order, so the
    /// model takes each as it is submitted); stops submitting at the first failure. Returns the
    /// revision after each submitted write (index 0: before any), how many writes were synced for
    /// sure, and how many were acknowledged (answers come in order: a prefix).
    /// </summary>
    private static async Task<(List<long> RevisionAfter, int Synced, int Acknowledged)> WriteAsync(MvccStore store, ReferenceModel model, int seed, int syncEvery, int window = 1)
    {
        var random = new Random(seed);
        var requests = new RandomRequests(random);
        var revisionAfter = new List<long> { model.Revision };
        var writes = new List<Task>();
        int synced = 0;
        try
        {
            for (int i = 1; i <= 40; i++)
            {
                ulong index = (ulong)i;
                switch (random.Next(4))
                {
                    case 0:
                        var delete = requests.Delete();
                        writes.Add(store.DeleteRangeAsync(delete, index).AsTask());
                        model.DeleteRange(delete);
                        break;
                    case 1:
                        var put1 = new PutRequest { Key = requests.Key(), Value = requests.Value() };
                        var put2 = new PutRequest { Key = requests.Key(), Value = requests.Value() };
                        var txn = new TxnRequest { Success = put1.Key.Span.SequenceEqual(put2.Key.Span) ? [RequestOp.Put(put1)] : [RequestOp.Put(put1), RequestOp.Put(put2)] };
                        writes.Add(store.TxnAsync(txn, index).AsTask());
                        model.Txn(txn);
                        break;
                    default:
                        var put = new PutRequest { Key = requests.Key(), Value = requests.Value() };
                        writes.Add(store.PutAsync(put, index).AsTask());
                        model.Put(put);
                        break;
                }

                revisionAfter.Add(model.Revision);
                if (writes.Count >= window)
                {
                    await writes[^window];
                }

                if (syncEvery > 0 && i % syncEvery == 0)
                {
                    await store.SyncAsync();
                    synced = i;
                }
            }
        }
        catch (Exception e) when (e is SimulatedCrashException or IOException)
        {
        }

        int acknowledged = 0;
        bool prefix = true;
        foreach (var write in writes)
        {
            try
            {
                await write;
                acknowledged += prefix ? 1 : 0;
            }
            catch (Exception e) when (e is SimulatedCrashException or IOException)
            {
                prefix = false;
            }
        }

        return (revisionAfter, synced, acknowledged);
    }

    /// <summary>The whole workload without a crash: how many file-system operations it makes, the model after it, the revision after each write.</summary>
    private static async Task<(long Operations, ReferenceModel Model, List<long> RevisionAfter)> RunWithoutCrashAsync(int seed, MvccStoreOptions options, int syncEvery, int window = 1)
    {
        var fs = new FaultInjectingFileSystem(seed);
        var model = new ReferenceModel(options.MaxTxnOps);
        List<long> revisionAfter;
        await using (var store = MvccStore.Open(fs, Db, options))
        {
            (revisionAfter, _, _) = await WriteAsync(store, model, seed, syncEvery, window);
        }

        return (fs.OperationCount, model, revisionAfter);
    }

    private static async Task CrashAndCheckAsync(int seed, MvccStoreOptions options, int syncEvery, long crashAt, (long Operations, ReferenceModel Model, List<long> RevisionAfter) complete, bool mustKeepEveryAcknowledged, int window = 1)
    {
        var fs = new FaultInjectingFileSystem(seed * 7919 + (int)crashAt) { CrashAfterOperation = crashAt };
        var model = complete.Model;
        var revisionAfter = complete.RevisionAfter;
        string where = $"seed {seed}, crash after operation {crashAt}";
        MvccStore store;
        try
        {
            store = MvccStore.Open(fs, Db, options);
        }
        catch (Exception e) when (e is SimulatedCrashException or IOException)
        {
            // The crash hit creating the store: reopening must find an empty store.
            fs.Restart();
            await using var fresh = MvccStore.Open(fs, Db, options);
            Assert.That((fresh.Revision, fresh.ConsistentIndex), Is.EqualTo((1L, 0UL)), where);
            return;
        }

        var (submittedRevisions, synced, acknowledged) = await WriteAsync(store, new ReferenceModel(options.MaxTxnOps), seed, syncEvery, window);
        DisposeAfterCrash(store);
        fs.Restart();
        await using var reopened = MvccStore.Open(fs, Db, options);

        // The consistent index says how many writes are durable; the data must be exactly theirs.
        // At most the writes in flight at the crash beyond the acknowledged ones may have made it.
        int submitted = submittedRevisions.Count - 1;
        int durable = (int)reopened.ConsistentIndex;
        Assert.That(durable, Is.InRange(mustKeepEveryAcknowledged ? acknowledged : synced, Math.Min(acknowledged + window, submitted)), $"{where}: writes durable ({acknowledged} acknowledged, {synced} synced, {submitted} submitted)");
        Assert.That(reopened.Revision, Is.EqualTo(revisionAfter[durable]), $"{where}: revision for consistent index {durable}");
        for (long at = 1; at <= reopened.Revision; at++)
        {
            Assert.That(Everything(reopened, at), Is.EqualTo(ModelEverything(model, at)), $"{where}: revision {at}");
        }
    }

    private static async Task<(ReferenceModel Model, long CompactAt)> PrepareForCompactionAsync(FaultInjectingFileSystem fs, int seed, MvccStoreOptions options)
    {
        var model = new ReferenceModel(options.MaxTxnOps);
        await using (var store = MvccStore.Open(fs, Db, options))
        {
            await WriteAsync(store, model, seed, syncEvery: 0);
        }

        return (model, model.Revision - 5);
    }

    // ------------------------------------------------------------------ checks

    private static void DisposeAfterCrash(MvccStore store)
    {
        try
        {
            store.Dispose();
        }
        catch (Exception e) when (e is SimulatedCrashException or IOException)
        {
            // The disk is gone; what matters is what the restart finds.
        }
    }

    private static string Everything(MvccStore store, long at)
    {
        var response = store.Range(new RangeRequest { Key = new byte[] { 0 }, RangeEnd = KeyRange.AllKeysFrom(), Revision = at });
        return string.Join(" ", response.Kvs.Select(kv => kv.ToString()));
    }

    private static string ModelEverything(ReferenceModel model, long at) => string.Join(" ", model.All(at).Select(kv => kv.ToString()));

    private static long StoredRevisionCount(FaultInjectingFileSystem fs)
    {
        using var database = BTreeDatabase.Open(fs, Db + "/mvcc.db", MvccStoreOptions.Default.BTree);
        using var tx = database.BeginRead();
        return tx.OpenBucket("key")!.Count;
    }

    /// <summary>What a compaction at <paramref name="at"/> leaves: each key live at it keeps one revision, plus every revision after it.</summary>
    private static long ExpectedStoredAfterCompaction(ReferenceModel model, long at)
    {
        long live = model.All(at).Count();
        long after = 0;
        for (long revision = at + 1; revision <= model.Revision; revision++)
        {
            after += model.ChangesAt(revision);
        }

        return live + after;
    }
}
