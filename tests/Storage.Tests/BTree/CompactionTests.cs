using EmbeddedRaft.Storage.BTree;
using static EmbeddedRaft.Storage.Tests.BTree.BTreeTestSupport;

namespace EmbeddedRaft.Storage.Tests.BTree;

/// <summary>Compaction copies the live data into a new, smaller file with full pages.</summary>
public class CompactionTests
{
    [Test]
    public void CompactionCopiesEveryBucketIntoASmallerFileThatPassesCheck()
    {
        const int Seed = 21;
        var random = new Random(Seed);
        var fs = NewDisk(Seed);
        using var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        for (int c = 0; c < 30; c++)
        {
            using var tx = db.BeginWrite();
            for (int i = 0; i < 300; i++)
            {
                var bucket = tx.CreateBucketIfNotExists(random.Next(3) == 0 ? "small" : "large");
                var key = RandomBytes(random, random.Next(4, 20));
                if (random.Next(4) == 0)
                {
                    bucket.Delete(key);
                }

                bucket.Put(key, RandomBytes(random, random.Next(10) == 0 ? 3000 : random.Next(1, 100)));
            }

            tx.Commit();
        }

        var expected = ReadAll(db);
        var before = db.GetStatistics();
        db.Compact(fs, "/db/compacted.db");
        using var compacted = BTreeDatabase.Open(fs, "/db/compacted.db", SmallPages);
        Assert.That(Difference(expected, ReadAll(compacted)), Is.Null);
        var report = compacted.Check();
        var after = compacted.GetStatistics();
        TestContext.Out.WriteLine($"before: {before}\nafter: {after}");
        Assert.That(after.FileSizeBytes, Is.LessThan(before.FileSizeBytes));
        Assert.That(report.FreePageCount, Is.LessThan(report.PageCount / 20));
    }

    [Test]
    public void CompactionRefusesAnExistingDestination()
    {
        var fs = NewDisk(1);
        using var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        BTreeDatabase.Open(fs, "/db/other.db", SmallPages).Dispose();
        Assert.Throws<IOException>(() => db.Compact(fs, "/db/other.db"));
    }
}
