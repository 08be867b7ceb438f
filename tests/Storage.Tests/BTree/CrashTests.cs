using EmbeddedRaft.Storage.BTree;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Storage.Tests.BTree.BTreeTestSupport;

namespace EmbeddedRaft.Storage.Tests.BTree;

/// <summary>
/// For each seed, a fixed series of commits (synced and not, with overflow values and deletes) is run
/// once cleanly to count its mutating file-system calls, then once per call with a crash injected
/// right after it. After the restart (unflushed writes kept, dropped or torn by sector), the database
/// must open, pass Check, and hold exactly the state of the last synced commit that returned, or of
/// the synced commit in progress if its meta page made it. Reproduce with BTREE_SEED=N.
/// </summary>
public class CrashTests
{
    private static IEnumerable<int> SeedCases() => Seeds(100, Soak ? 400 : 40);

    [TestCaseSource(nameof(SeedCases))]
    public void ACrashAfterAnyWriteOrFlushLeavesTheLastDurableCommitIntact(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (reproduce with BTREE_SEED={seed})");
        var plans = Plan(seed);
        var models = Models(plans);

        var clean = NewDisk(seed);
        var cleanOutcome = Run(clean, plans);
        Assert.That(cleanOutcome.LastReturned, Is.EqualTo(plans.Count), $"seed {seed}: the clean run did not finish");
        long total = clean.OperationCount;
        using (var reopened = BTreeDatabase.Open(clean, DatabasePath, SmallPages))
        {
            Assert.That(Difference(models[^1], ReadAll(reopened)), Is.Null, $"seed {seed}: clean run");
        }

        TestContext.Out.WriteLine($"{plans.Count} commits, {total} mutating file-system calls; crashing after each");
        for (long crashAt = 1; crashAt <= total; crashAt++)
        {
            var fs = NewDisk(seed);
            fs.CrashAfterOperation = crashAt;
            var outcome = Run(fs, plans);
            string where = $"seed {seed}, crash after call {crashAt} of {total} (last synced commit {outcome.LastDurable}, in progress {outcome.InProgress}; reproduce with BTREE_SEED={seed})";
            Assert.That(outcome.Crashed, Is.True, where);
            fs.Restart();

            using var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
            db.Check();
            var actual = ReadAll(db);
            bool matchesDurable = Difference(models[outcome.LastDurable], actual) is null;
            bool matchesInProgress = outcome.InProgress is int i && plans[i - 1].Durability == CommitDurability.Synced && Difference(models[i], actual) is null;
            Assert.That(matchesDurable || matchesInProgress, Is.True, $"{where}: {Difference(models[outcome.LastDurable], actual)}");

            // The recovered database keeps working: its freelist is sound enough to commit on.
            using (var tx = db.BeginWrite())
            {
                tx.CreateBucketIfNotExists("after-crash").Put([1, 2, 3], new byte[300]);
                tx.Commit();
            }

            db.Check();
        }
    }

    private static IEnumerable<int> PipelinedSeedCases() => Seeds(100, Soak ? 200 : 20);

    /// <summary>
    /// The pipelined group commit (the MVCC store's): every commit is made without a flush, and
    /// <see cref="BTreeDatabase.SyncCommitted"/> on a second thread makes it durable while the next
    /// commit is written — held at its meta page write, after its flush, until the next commit's
    /// pages are written, so those pages land between the sync's flush and its meta page. A crash
    /// after any write or flush of that schedule (the same for a seed every run) leaves the last
    /// commit whose sync returned, or the one whose sync was under way if its meta page made it.
    /// </summary>
    [TestCaseSource(nameof(PipelinedSeedCases))]
    public void ACrashAfterAnyWriteOrFlushOfAPipelinedSyncLeavesTheLastDurableCommitIntact(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (reproduce with BTREE_SEED={seed})");
        var plans = Plan(seed);
        var models = Models(plans);

        var clean = NewDisk(seed);
        var cleanOutcome = RunPipelined(clean, plans);
        Assert.That(cleanOutcome.LastDurable, Is.EqualTo(plans.Count), $"seed {seed}: the clean run did not finish");
        long total = clean.OperationCount;
        using (var reopened = BTreeDatabase.Open(clean, DatabasePath, SmallPages))
        {
            Assert.That(Difference(models[^1], ReadAll(reopened)), Is.Null, $"seed {seed}: clean run");
        }

        TestContext.Out.WriteLine($"{plans.Count} commits, {total} mutating file-system calls; crashing after each");
        for (long crashAt = 1; crashAt <= total; crashAt++)
        {
            var fs = NewDisk(seed);
            fs.CrashAfterOperation = crashAt;
            var outcome = RunPipelined(fs, plans);
            string where = $"seed {seed}, crash after call {crashAt} of {total} (last durable commit {outcome.LastDurable}, syncing {outcome.InProgress}; reproduce with BTREE_SEED={seed})";
            Assert.That(outcome.Crashed, Is.True, where);
            fs.Restart();

            using var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
            db.Check();
            var actual = ReadAll(db);
            bool matchesDurable = Difference(models[outcome.LastDurable], actual) is null;
            bool matchesSyncing = outcome.InProgress is int i && Difference(models[i], actual) is null;
            Assert.That(matchesDurable || matchesSyncing, Is.True, $"{where}: {Difference(models[outcome.LastDurable], actual)}");
            using (var tx = db.BeginWrite())
            {
                tx.CreateBucketIfNotExists("after-crash").Put([1, 2, 3], new byte[300]);
                tx.Commit();
            }

            db.Check();
        }
    }

    [Test]
    public void ACrashLosesNoSyncCommitsButKeepsTheSyncedOnesBeforeThem()
    {
        var fs = NewDisk(7);
        var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        {
            using (var tx = db.BeginWrite())
            {
                tx.CreateBucket("b").Put("synced"u8, "1"u8);
                tx.Commit();
            }

            using (var tx = db.BeginWrite())
            {
                tx.OpenBucket("b")!.Put("unsynced"u8, "2"u8);
                tx.Commit(CommitDurability.NoSync);
            }

            using (var read = db.BeginRead())
            {
                Assert.That(read.OpenBucket("b")!.Get("unsynced"u8), Is.EqualTo("2"u8.ToArray()), "a NoSync commit is visible at once");
            }

            // The process dies here: nothing else reaches the disk, not even Dispose.
            fs.Crash();
        }

        fs.Restart();
        using var reopened = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        using var check = reopened.BeginRead();
        Assert.That(check.OpenBucket("b")!.Get("synced"u8), Is.EqualTo("1"u8.ToArray()));
        Assert.That(check.OpenBucket("b")!.Get("unsynced"u8), Is.Null);
        reopened.Check();
    }

    [Test]
    public void ASyncedCommitMakesEarlierNoSyncCommitsDurable()
    {
        var fs = NewDisk(8);
        var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        {
            using (var tx = db.BeginWrite())
            {
                tx.CreateBucket("b").Put("first"u8, "1"u8);
                tx.Commit(CommitDurability.NoSync);
            }

            using (var tx = db.BeginWrite())
            {
                tx.OpenBucket("b")!.Put("second"u8, "2"u8);
                tx.Commit();
            }

            // The process dies here: nothing else reaches the disk, not even Dispose.
            fs.Crash();
        }

        fs.Restart();
        using var reopened = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        using var check = reopened.BeginRead();
        Assert.That(check.OpenBucket("b")!.Get("first"u8), Is.EqualTo("1"u8.ToArray()));
        Assert.That(check.OpenBucket("b")!.Get("second"u8), Is.EqualTo("2"u8.ToArray()));
    }

    private sealed record Op(string Bucket, byte[] Key, byte[]? Value, bool DropBucket = false);

    private sealed record TxPlan(List<Op> Ops, CommitDurability Durability);

    private sealed record Outcome(bool Crashed, int LastReturned, int LastDurable, int? InProgress);

    private static List<TxPlan> Plan(int seed)
    {
        var random = new Random(seed);
        var plans = new List<TxPlan>();
        int commits = random.Next(5, 9);
        for (int c = 0; c < commits; c++)
        {
            var ops = new List<Op>();
            int count = random.Next(20, 160);
            for (int i = 0; i < count; i++)
            {
                string bucket = random.Next(4) == 0 ? "second" : "main";
                var key = BitConverter.GetBytes(random.Next(700));
                if (random.Next(300) == 0)
                {
                    ops.Add(new Op(bucket, key, null, DropBucket: true));
                }
                else if (random.Next(4) == 0)
                {
                    ops.Add(new Op(bucket, key, null));
                }
                else
                {
                    int length = random.Next(15) == 0 ? random.Next(300, 3000) : random.Next(1, 60);
                    ops.Add(new Op(bucket, key, RandomBytes(random, length)));
                }
            }

            // Never end on a NoSync commit: Dispose would sync it, which is a different scenario.
            var durability = c < commits - 1 && random.Next(3) == 0 ? CommitDurability.NoSync : CommitDurability.Synced;
            plans.Add(new TxPlan(ops, durability));
        }

        return plans;
    }

    /// <summary>models[0] is the empty database; models[i] the state after commit i.</summary>
    private static List<Dictionary<string, SortedDictionary<byte[], byte[]>>> Models(List<TxPlan> plans)
    {
        var models = new List<Dictionary<string, SortedDictionary<byte[], byte[]>>> { new(StringComparer.Ordinal) };
        foreach (var plan in plans)
        {
            var model = Copy(models[^1]);
            foreach (var op in plan.Ops)
            {
                if (op.DropBucket)
                {
                    model.Remove(op.Bucket);
                    continue;
                }

                if (!model.TryGetValue(op.Bucket, out var bucket))
                {
                    model.Add(op.Bucket, bucket = NewModel());
                }

                if (op.Value is null)
                {
                    bucket.Remove(op.Key);
                }
                else
                {
                    bucket[op.Key] = op.Value;
                }
            }

            models.Add(model);
        }

        return models;
    }

    /// <summary>
    /// Commits each plan without a flush; the sync of commit i runs on its own thread and is held at
    /// its meta page write until commit i+1 is written (see the test). Outcome: LastDurable is the
    /// last commit whose sync returned, InProgress the one whose sync was under way at the crash.
    /// </summary>
    private static Outcome RunPipelined(FaultInjectingFileSystem fs, List<TxPlan> plans)
    {
        int lastReturned = 0;
        int lastDurable = 0;
        int? syncing = null;
        Thread? committer = null;
        Exception? syncFailure = null;
        using var atMetaWrite = new ManualResetEventSlim();
        using var releaseMetaWrite = new ManualResetEventSlim();
        fs.BeforeEntering = (kind, _) =>
        {
            if (kind == FaultOperationKind.Write && ReferenceEquals(Thread.CurrentThread, Volatile.Read(ref committer)))
            {
                atMetaWrite.Set();
                releaseMetaWrite.Wait();
            }
        };

        BTreeDatabase? db = null;
        void FinishSync()
        {
            if (committer is null)
            {
                return;
            }

            releaseMetaWrite.Set();
            committer.Join();
            committer = null;
            if (syncFailure is not null)
            {
                throw syncFailure;
            }

            lastDurable = syncing!.Value;
            syncing = null;
        }

        try
        {
            db = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
            for (int i = 1; i <= plans.Count; i++)
            {
                using (var tx = db.BeginWrite())
                {
                    Apply(tx, plans[i - 1].Ops);
                    tx.Commit(CommitDurability.NoSync);
                }

                lastReturned = i;

                // Commit i's pages are written while commit i-1's sync waits between its flush and its meta page.
                FinishSync();
                atMetaWrite.Reset();
                releaseMetaWrite.Reset();
                syncing = i;
                var database = db;
                var thread = new Thread(() =>
                {
                    try
                    {
                        database.SyncCommitted();
                    }
                    catch (Exception e)
                    {
                        syncFailure = e;
                    }
                    finally
                    {
                        atMetaWrite.Set();
                    }
                });
                Volatile.Write(ref committer, thread);
                thread.Start();
                atMetaWrite.WaitOrFail($"the sync of commit {i} reaching its meta page write");
            }

            FinishSync();
            db.Dispose();
            return new Outcome(false, lastReturned, lastDurable, null);
        }
        catch (Exception e) when (e is SimulatedCrashException or StorageFaultedException)
        {
            try
            {
                FinishSync();
            }
            catch (Exception) when (syncFailure is not null)
            {
            }

            try
            {
                db?.Dispose();
            }
            catch (SimulatedCrashException)
            {
            }

            return new Outcome(true, lastReturned, lastDurable, syncing);
        }
        finally
        {
            fs.BeforeEntering = null;
            releaseMetaWrite.Set();
        }
    }

    private static void Apply(Transaction tx, List<Op> ops)
    {
        foreach (var op in ops)
        {
            if (op.DropBucket)
            {
                tx.DeleteBucket(op.Bucket);
                continue;
            }

            var bucket = tx.CreateBucketIfNotExists(op.Bucket);
            if (op.Value is null)
            {
                bucket.Delete(op.Key);
            }
            else
            {
                bucket.Put(op.Key, op.Value);
            }
        }
    }

    private static Outcome Run(FaultInjectingFileSystem fs, List<TxPlan> plans)
    {
        int lastReturned = 0;
        int lastDurable = 0;
        int? inProgress = null;
        BTreeDatabase? db = null;
        try
        {
            db = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
            for (int i = 1; i <= plans.Count; i++)
            {
                using var tx = db.BeginWrite();
                foreach (var op in plans[i - 1].Ops)
                {
                    if (op.DropBucket)
                    {
                        tx.DeleteBucket(op.Bucket);
                        continue;
                    }

                    var bucket = tx.CreateBucketIfNotExists(op.Bucket);
                    if (op.Value is null)
                    {
                        bucket.Delete(op.Key);
                    }
                    else
                    {
                        bucket.Put(op.Key, op.Value);
                    }
                }

                inProgress = i;
                tx.Commit(plans[i - 1].Durability);
                inProgress = null;
                lastReturned = i;
                if (plans[i - 1].Durability == CommitDurability.Synced)
                {
                    lastDurable = i;
                }
            }

            db.Dispose();
            return new Outcome(false, lastReturned, lastDurable, null);
        }
        catch (SimulatedCrashException)
        {
            db?.Dispose();
            return new Outcome(true, lastReturned, lastDurable, inProgress);
        }
    }
}
