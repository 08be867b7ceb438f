using EmbeddedRaft.Storage.BTree;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Storage.Tests.BTree.BTreeTestSupport;

namespace EmbeddedRaft.Storage.Tests.BTree;

/// <summary>
/// A flipped bit in any page in use is caught by Check and by reads, as a CorruptionException that
/// names the page; corrupt bytes are never returned as data. Reproduce with BTREE_SEED=N.
/// </summary>
public class CorruptionTests
{
    private const int PageSize = 1024;

    private static IEnumerable<int> SeedCases() => Seeds(500, Soak ? 500 : 60);

    [TestCaseSource(nameof(SeedCases))]
    public void ABitFlipInAUsedPageIsDetectedByCheckAndByReadsNamingThePage(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (reproduce with BTREE_SEED={seed})");
        var random = new Random(seed);
        var (fs, model) = Build(seed);

        long pageCount;
        HashSet<long> free;
        long freelistPage;
        int freelistPages;
        using (var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages))
        {
            pageCount = db.GetStatistics().PageCount;
            free = [.. db.FreelistSnapshotForCheck()];
            using var snapshot = db.BeginRead();
            (freelistPage, freelistPages) = (snapshot.Snapshot.FreelistPage, snapshot.Snapshot.FreelistPageCount);
        }

        long page;
        do
        {
            page = random.NextInt64(2, pageCount);
        }
        while (free.Contains(page));

        long offset = (page * PageSize) + random.Next(PageSize);
        fs.FlipBit(DatabasePath, offset, random.Next(8));
        string where = $"seed {seed}: bit flipped at offset {offset} (page {page}); reproduce with BTREE_SEED={seed}";

        if (page >= freelistPage && page < freelistPage + freelistPages)
        {
            // The freelist is derived data: the open rebuilds it from the trees and says so.
            using var rebuilt = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
            Assert.That(rebuilt.OpenReport.FreelistRebuilt, Is.True, where);
            Assert.That(rebuilt.OpenReport.FreelistDamage, Does.Contain($"page {freelistPage}:"), where);
            rebuilt.Check();
            Assert.That(Difference(model, ReadAll(rebuilt)), Is.Null, where);
            return;
        }

        // Only the meta pages and the freelist are read at open: a flip elsewhere does not stop it.
        var opened = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        using (opened)
        {
            var checkError = Assert.Throws<CorruptionException>(() => opened.Check(), where)!;
            AssertNamesThePage(checkError, offset, where);
        }

        // A fresh instance, so every page comes from disk, not from the cache Check bypassed anyway.
        using var reader = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        int detected = 0;
        using var tx = reader.BeginRead();
        foreach (var (name, expected) in model)
        {
            Bucket bucket;
            try
            {
                bucket = tx.OpenBucket(name)!;
                Assert.That(bucket, Is.Not.Null, where);
            }
            catch (CorruptionException e)
            {
                AssertNamesThePage(e, offset, where);
                detected++;
                continue;
            }

            foreach (var (key, value) in expected)
            {
                try
                {
                    Assert.That(bucket.TryGet(key, out var actual), Is.True, where);
                    Assert.That(actual.SequenceEqual(value), Is.True, $"{where}: wrong data returned for a key");
                }
                catch (CorruptionException e)
                {
                    AssertNamesThePage(e, offset, where);
                    detected++;
                }
            }

            try
            {
                var cursor = bucket.CreateCursor();
                for (bool more = cursor.First(); more; more = cursor.Next())
                {
                    Assert.That(expected.TryGetValue(cursor.Key.ToArray(), out var want), Is.True, $"{where}: a key that was never written");
                    Assert.That(cursor.Value.SequenceEqual(want), Is.True, $"{where}: wrong data returned by a cursor");
                }
            }
            catch (CorruptionException e)
            {
                AssertNamesThePage(e, offset, where);
                detected++;
            }
        }

        Assert.That(detected, Is.GreaterThan(0), $"{where}: no read noticed the flipped bit");
    }

    [Test]
    public void ACorruptNewestMetaPageFallsBackToThePreviousCommit()
    {
        var fs = NewDisk(3);
        long newest;
        using (var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages))
        {
            for (int i = 0; i < 3; i++)
            {
                using var tx = db.BeginWrite();
                tx.CreateBucketIfNotExists("b").Put(BitConverter.GetBytes(i), BitConverter.GetBytes(i));
                tx.Commit();
            }

            newest = db.GetStatistics().Txid;
        }

        // Commit 3 went to meta page 1 (commits alternate, starting with page 1).
        fs.FlipBit(DatabasePath, (newest % 2 * PageSize) + 40, 3);
        using var reopened = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        Assert.That(reopened.GetStatistics().Txid, Is.EqualTo(newest - 1));
        using var read = reopened.BeginRead();
        Assert.That(read.OpenBucket("b")!.Count, Is.EqualTo(2));
        reopened.Check();
    }

    [Test]
    public void BothMetaPagesCorruptIsRefusedWithACorruptionException()
    {
        var fs = NewDisk(4);
        BTreeDatabase.Open(fs, DatabasePath, SmallPages).Dispose();
        fs.FlipBit(DatabasePath, 50, 0);
        fs.FlipBit(DatabasePath, PageSize + 50, 0);
        var error = Assert.Throws<CorruptionException>(() => BTreeDatabase.Open(fs, DatabasePath, SmallPages).Dispose())!;
        Assert.That(error.Path, Is.EqualTo(DatabasePath));
        Assert.That(error.Reason, Does.Contain("meta"));
    }

    private static void AssertNamesThePage(CorruptionException e, long flippedOffset, string where)
    {
        // The exception names the page (or the first page of the multi-page run) that holds the flip.
        Assert.That(e.Path, Is.EqualTo(DatabasePath), where);
        Assert.That(e.Offset % PageSize, Is.EqualTo(0), where);
        Assert.That(e.Offset, Is.LessThanOrEqualTo(flippedOffset), $"{where}: {e.Message}");
        Assert.That(flippedOffset - e.Offset, Is.LessThan(8 * PageSize), $"{where}: {e.Message}");
        Assert.That(e.Reason, Does.StartWith($"page {e.Offset / PageSize}:"), where);
    }

    private static (FaultInjectingFileSystem Fs, Dictionary<string, SortedDictionary<byte[], byte[]>> Model) Build(int seed)
    {
        var random = new Random(seed);
        var fs = NewDisk(seed);
        var model = new Dictionary<string, SortedDictionary<byte[], byte[]>>(StringComparer.Ordinal);
        using var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        for (int commit = 0; commit < 4; commit++)
        {
            using var tx = db.BeginWrite();
            for (int i = 0; i < 150; i++)
            {
                string name = random.Next(3) == 0 ? "small" : "large";
                if (!model.TryGetValue(name, out var bucket))
                {
                    model.Add(name, bucket = NewModel());
                }

                var key = BitConverter.GetBytes(random.Next(400));
                if (random.Next(5) == 0)
                {
                    tx.CreateBucketIfNotExists(name).Delete(key);
                    bucket.Remove(key);
                    continue;
                }

                var value = RandomBytes(random, random.Next(12) == 0 ? random.Next(300, 4000) : random.Next(1, 80));
                tx.CreateBucketIfNotExists(name).Put(key, value);
                bucket[key] = value;
            }

            tx.Commit();
        }

        return (fs, model);
    }
}
