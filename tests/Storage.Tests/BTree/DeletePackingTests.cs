using System.Buffers.Binary;
using EmbeddedRaft.Storage.BTree;
using static EmbeddedRaft.Storage.Tests.BTree.BTreeTestSupport;

namespace EmbeddedRaft.Storage.Tests.BTree;

/// <summary>
/// Deletes spread thinly over many adjacent leaves (an MVCC compaction removing superseded revisions,
/// which are keyed in revision order) leave those leaves packed into the fewest pages at commit, not
/// each rewritten at its lower fill; and packing keeps every tree equal to a model and passing Check.
/// Reproduce with BTREE_SEED=N; BTREE_SOAK=1 runs 300 seeds.
/// </summary>
public class DeletePackingTests
{
    private static IEnumerable<int> SeedCases() => Seeds(2700, Soak ? 300 : 6);

    [TestCaseSource(nameof(SeedCases))]
    public void ThinDeletesInStepsOfAThousandKeysLeaveTheLeavesAtLeastFourFifthsFull(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (reproduce with BTREE_SEED={seed})");
        var random = new Random(seed);
        var fs = NewDisk(seed);
        using var db = BTreeDatabase.Open(fs, DatabasePath, new BTreeOptions { PageSizeBytes = 16384 });
        var model = NewModel();

        // 12,000 revisions of ~1 KiB appended in commits of 1,000: ~15 to a leaf, every leaf full.
        const int Revisions = 12_000;
        for (int start = 1; start <= Revisions; start += 1_000)
        {
            using var tx = db.BeginWrite();
            var bucket = tx.CreateBucketIfNotExists("key");
            for (long revision = start; revision < start + 1_000; revision++)
            {
                var value = RandomBytes(random, random.Next(900, 1100));
                bucket.Put(Key(revision), value);
                model[Key(revision)] = value;
            }

            tx.Commit();
        }

        // A compaction's way: steps of 1,000 consecutive revisions, each a commit deleting about
        // two in three of them at random (superseded revisions lie in nearly every leaf).
        for (int start = 1; start <= Revisions; start += 1_000)
        {
            using var tx = db.BeginWrite();
            var bucket = tx.OpenBucket("key")!;
            for (long revision = start; revision < start + 1_000; revision++)
            {
                if (random.Next(3) != 0)
                {
                    Assert.That(bucket.Delete(Key(revision)), Is.True);
                    model.Remove(Key(revision));
                }
            }

            tx.Commit(random.Next(2) == 0 ? CommitDurability.NoSync : CommitDurability.Synced);
        }

        db.Check();
        Assert.That(Difference(new() { ["key"] = model }, ReadAll(db)), Is.Null, $"seed {seed}");
        using (var read = db.BeginRead())
        {
            var shape = BucketShape.Of(read, read.OpenBucket("key")!);
            TestContext.Out.WriteLine($"{shape.Entries} entries on {shape.LeafPages} leaves, fill {shape.LeafFill:P1}, {shape.LeavesAtMostHalfFull} at most half full");

            // Without packing each leaf keeps about its third and only the few left under a quarter full
            // merge: 43.5-44.5% over seeds 2700-2705 (session 27).
            Assert.That(shape.LeafFill, Is.GreaterThanOrEqualTo(0.8), $"seed {seed}: leaf fill after the deletes");
        }

        // Packed leaves still take appends at the right edge and deletes in the middle.
        using (var tx = db.BeginWrite())
        {
            var bucket = tx.OpenBucket("key")!;
            for (long revision = Revisions + 1; revision <= Revisions + 500; revision++)
            {
                var value = RandomBytes(random, 1024);
                bucket.Put(Key(revision), value);
                model[Key(revision)] = value;
            }

            foreach (var key in model.Keys.Where((_, i) => i % 5 == 0).ToList())
            {
                Assert.That(bucket.Delete(key), Is.True);
                model.Remove(key);
            }

            tx.Commit();
        }

        db.Check();
        Assert.That(Difference(new() { ["key"] = model }, ReadAll(db)), Is.Null, $"seed {seed}: after more writes");
    }

    [TestCaseSource(nameof(SeedCases))]
    public void RunsOfDeletesMixedWithInsertsAndOverflowValuesMatchTheModelAndPassCheck(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (reproduce with BTREE_SEED={seed})");
        var random = new Random(seed);
        var fs = NewDisk(seed);
        var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        var committed = new Dictionary<string, SortedDictionary<byte[], byte[]>>(StringComparer.Ordinal) { ["key"] = NewModel() };
        long next = 1;
        try
        {
            int commits = Soak ? 300 : 120;
            for (int c = 0; c < commits; c++)
            {
                var working = Copy(committed);
                var model = working["key"];
                var tx = db.BeginWrite();
                var bucket = tx.CreateBucketIfNotExists("key");

                // Appends (some values past a small page's inline limit), deletes of a random share of
                // a random span of keys (thin or thick, short or across many leaves and branches), and
                // now and then inserts into the span's gaps, so one leaf may have both.
                int appends = random.Next(0, 300);
                for (int i = 0; i < appends; i++, next += 2)
                {
                    var value = RandomBytes(random, random.Next(8) == 0 ? random.Next(300, 2000) : random.Next(0, 200));
                    bucket.Put(Key(next), value);
                    model[Key(next)] = value;
                }

                if (model.Count > 0)
                {
                    var keys = model.Keys.ToList();
                    int from = random.Next(keys.Count);
                    int span = random.Next(1, keys.Count - from + 1);
                    int deletePercent = random.Next(1, 101);
                    foreach (var key in keys.Skip(from).Take(span))
                    {
                        if (random.Next(100) < deletePercent)
                        {
                            Assert.That(bucket.Delete(key), Is.True, $"seed {seed}, commit {c}");
                            model.Remove(key);
                        }
                        else if (random.Next(10) == 0)
                        {
                            // The odd key between two appended ones (appends step by two).
                            var between = Key(BinaryPrimitives.ReadInt64BigEndian(key) + 1);
                            var value = RandomBytes(random, random.Next(0, 300));
                            bucket.Put(between, value);
                            model[between] = value;
                        }
                    }
                }

                if (random.Next(8) == 0)
                {
                    tx.Rollback();
                    continue;
                }

                tx.Commit(random.Next(3) == 0 ? CommitDurability.NoSync : CommitDurability.Synced);
                committed = working;
                var report = db.Check();
                Assert.That(report.EntryCount, Is.EqualTo(committed["key"].Count), $"seed {seed}: entry count after commit {c}");
                if (random.Next(20) == 0)
                {
                    Assert.That(Difference(committed, ReadAll(db)), Is.Null, $"seed {seed}, commit {c}");
                    db.Dispose();
                    db = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
                }
            }

            Assert.That(Difference(committed, ReadAll(db)), Is.Null, $"seed {seed}: at the end");
        }
        finally
        {
            db.Dispose();
        }
    }

    private static byte[] Key(long revision)
    {
        var key = new byte[8];
        BinaryPrimitives.WriteInt64BigEndian(key, revision);
        return key;
    }
}
