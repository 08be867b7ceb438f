using EmbeddedRaft.Storage.BTree;
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
