using EmbeddedRaft.Storage.BTree;
using static EmbeddedRaft.Storage.Tests.BTree.BTreeTestSupport;

namespace EmbeddedRaft.Storage.Tests.BTree;

/// <summary>What a user relies on from transactions, buckets and cursors, one behaviour per test.</summary>
public class TransactionBehaviourTests
{
    private BTreeDatabase _db = null!;

    [SetUp]
    public void OpenDatabase() => _db = BTreeDatabase.Open(NewDisk(1), DatabasePath, SmallPages);

    [TearDown]
    public void CloseDatabase() => _db.Dispose();

    [Test]
    public void CommittedDataSurvivesReopening()
    {
        var fs = NewDisk(2);
        using (var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages))
        {
            using var tx = db.BeginWrite();
            tx.CreateBucket("b").Put("key"u8, "value"u8);
            tx.Commit();
        }

        using var reopened = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        using var read = reopened.BeginRead();
        Assert.That(read.OpenBucket("b")!.Get("key"u8), Is.EqualTo("value"u8.ToArray()));
    }

    [Test]
    public void ReadsOfEachCommitSeeThatCommitsBucketWhileReadsOfTheSameCommitShareOneCatalogLookup()
    {
        // Read transactions of one commit reuse its bucket's catalog record: a commit that moves the
        // bucket's root, or deletes and recreates the bucket, must never be hidden from a later read.
        Commit(tx => tx.CreateBucket("b").Put("k"u8, "1"u8));
        using var first = _db.BeginRead();
        Assert.That(first.OpenBucket("b")!.Get("k"u8), Is.EqualTo("1"u8.ToArray()));
        using (var sameCommit = _db.BeginRead())
        {
            Assert.That(sameCommit.OpenBucket("b")!.Get("k"u8), Is.EqualTo("1"u8.ToArray()), "same commit, same bucket");
            Assert.That(sameCommit.OpenBucket("other"), Is.Null, "a bucket that does not exist is not the cached one");
        }

        Commit(tx => tx.OpenBucket("b")!.Put("k"u8, "2"u8));
        using (var afterPut = _db.BeginRead())
        {
            Assert.That(afterPut.OpenBucket("b")!.Get("k"u8), Is.EqualTo("2"u8.ToArray()), "a later commit's read sees its root");
        }

        Commit(tx =>
        {
            tx.DeleteBucket("b");
            tx.CreateBucket("b").Put("new"u8, "3"u8);
        });
        using (var afterRecreate = _db.BeginRead())
        {
            var bucket = afterRecreate.OpenBucket("b")!;
            Assert.That(bucket.Get("k"u8), Is.Null, "the recreated bucket does not have the old key");
            Assert.That(bucket.Count, Is.EqualTo(1));
        }

        Commit(tx => tx.DeleteBucket("b"));
        using (var afterDelete = _db.BeginRead())
        {
            Assert.That(afterDelete.OpenBucket("b"), Is.Null, "a deleted bucket is gone for reads of later commits");
        }

        Assert.That(first.OpenBucket("b")!.Get("k"u8), Is.EqualTo("1"u8.ToArray()), "the first read still sees its own commit");
    }

    [Test]
    public void RollbackDiscardsEverything()
    {
        Commit(tx => tx.CreateBucket("kept").Put("a"u8, "1"u8));
        using (var tx = _db.BeginWrite())
        {
            tx.OpenBucket("kept")!.Put("b"u8, "2"u8);
            tx.CreateBucket("discarded");
            tx.Rollback();
        }

        using var read = _db.BeginRead();
        Assert.That(read.ListBuckets(), Is.EqualTo(new[] { "kept" }));
        Assert.That(read.OpenBucket("kept")!.Count, Is.EqualTo(1));
        _db.Check();
    }

    [Test]
    public void DisposingAnUncommittedWriteTransactionRollsItBack()
    {
        using (var tx = _db.BeginWrite())
        {
            tx.CreateBucket("b").Put("a"u8, "1"u8);
        }

        using var read = _db.BeginRead();
        Assert.That(read.OpenBucket("b"), Is.Null);
    }

    [Test]
    public void AReaderSeesTheSnapshotOfTheMomentItBegan()
    {
        Commit(tx => tx.CreateBucket("b").Put("a"u8, "old"u8));
        using var reader = _db.BeginRead();
        Commit(tx =>
        {
            tx.OpenBucket("b")!.Put("a"u8, "new"u8);
            tx.OpenBucket("b")!.Put("z"u8, "added"u8);
        });

        Assert.That(reader.OpenBucket("b")!.Get("a"u8), Is.EqualTo("old"u8.ToArray()));
        Assert.That(reader.OpenBucket("b")!.Get("z"u8), Is.Null);
        using var later = _db.BeginRead();
        Assert.That(later.OpenBucket("b")!.Get("a"u8), Is.EqualTo("new"u8.ToArray()));
    }

    [Test]
    public void AWriteTransactionSeesItsOwnUncommittedChanges()
    {
        using var tx = _db.BeginWrite();
        var bucket = tx.CreateBucket("b");
        bucket.Put("x"u8, "1"u8);
        Assert.That(bucket.Get("x"u8), Is.EqualTo("1"u8.ToArray()));
        Assert.That(bucket.Delete("x"u8), Is.True);
        Assert.That(bucket.Get("x"u8), Is.Null);
        Assert.That(bucket.Delete("x"u8), Is.False);
    }

    [Test]
    public void BucketsAreSeparateKeyspacesThatCanBeListedAndDeleted()
    {
        Commit(tx =>
        {
            tx.CreateBucket("one").Put("k"u8, "1"u8);
            tx.CreateBucket("two").Put("k"u8, "2"u8);
            tx.CreateBucket("three");
        });

        Commit(tx => Assert.That(tx.DeleteBucket("two"), Is.True));
        using var read = _db.BeginRead();
        Assert.That(read.ListBuckets(), Is.EqualTo(new[] { "one", "three" }));
        Assert.That(read.OpenBucket("one")!.Get("k"u8), Is.EqualTo("1"u8.ToArray()));
        Assert.That(read.OpenBucket("two"), Is.Null);
        _db.Check();
    }

    [Test]
    public void CreatingAnExistingBucketIsRefused()
    {
        Commit(tx => tx.CreateBucket("b"));
        using var tx = _db.BeginWrite();
        Assert.Throws<InvalidOperationException>(() => tx.CreateBucket("b"));
        Assert.That(tx.CreateBucketIfNotExists("b"), Is.Not.Null);
    }

    [Test]
    public void ADeletedBucketCannotBeUsedAnyMore()
    {
        Commit(tx => tx.CreateBucket("b"));
        using var tx = _db.BeginWrite();
        var bucket = tx.OpenBucket("b")!;
        tx.DeleteBucket("b");
        Assert.Throws<InvalidOperationException>(() => bucket.Put("k"u8, "v"u8));
    }

    [Test]
    public void CursorsWalkBothWaysAndSeekToTheFirstKeyAtOrAfter()
    {
        Commit(tx =>
        {
            var b = tx.CreateBucket("b");
            for (int i = 0; i < 1000; i += 10)
            {
                b.Put(BigEndian(i), BigEndian(i));
            }
        });

        using var read = _db.BeginRead();
        var cursor = read.OpenBucket("b")!.CreateCursor();
        Assert.That(cursor.Seek(BigEndian(15)), Is.True);
        Assert.That(cursor.Key.ToArray(), Is.EqualTo(BigEndian(20)));
        Assert.That(cursor.Previous(), Is.True);
        Assert.That(cursor.Key.ToArray(), Is.EqualTo(BigEndian(10)));
        Assert.That(cursor.Seek(BigEndian(991)), Is.False);
        Assert.That(cursor.IsPositioned, Is.False);
        Assert.That(cursor.Last(), Is.True);
        Assert.That(cursor.Key.ToArray(), Is.EqualTo(BigEndian(990)));
        Assert.That(cursor.Next(), Is.False);
        Assert.That(cursor.First(), Is.True);
        Assert.That(cursor.Value.ToArray(), Is.EqualTo(BigEndian(0)));
        Assert.That(cursor.Previous(), Is.False);
    }

    [Test]
    public void CursorsOnAnEmptyBucketFindNothing()
    {
        using var tx = _db.BeginWrite();
        var cursor = tx.CreateBucket("empty").CreateCursor();
        Assert.That(cursor.First(), Is.False);
        Assert.That(cursor.Last(), Is.False);
        Assert.That(cursor.Seek("a"u8), Is.False);
        Assert.Throws<InvalidOperationException>(() => _ = cursor.Key.Length);
    }

    [Test]
    public void AChangeToTheBucketInvalidatesItsCursorsUntilRepositioned()
    {
        using var tx = _db.BeginWrite();
        var bucket = tx.CreateBucket("b");
        bucket.Put("a"u8, "1"u8);
        var cursor = bucket.CreateCursor();
        Assert.That(cursor.First(), Is.True);
        bucket.Put("b"u8, "2"u8);
        Assert.Throws<InvalidOperationException>(() => cursor.Next());
        Assert.That(cursor.Seek("b"u8), Is.True);
    }

    [Test]
    public void ValuesLargerThanAPageRoundTripThroughOverflowPages()
    {
        var random = new Random(11);
        var big = RandomBytes(random, 1_000_000);
        Commit(tx => tx.CreateBucket("b").Put("big"u8, big));
        Commit(tx => tx.OpenBucket("b")!.Put("big2"u8, big.AsSpan(1, 5000)));
        using (var read = _db.BeginRead())
        {
            Assert.That(read.OpenBucket("b")!.Get("big"u8), Is.EqualTo(big));
            Assert.That(read.OpenBucket("b")!.Get("big2"u8), Is.EqualTo(big.AsSpan(1, 5000).ToArray()));
        }

        Commit(tx => tx.OpenBucket("b")!.Delete("big"u8));
        var report = _db.Check();
        Assert.That(report.FreePageCount, Is.GreaterThan(1_000_000 / 1024), "the overflow pages were freed");
    }

    [Test]
    public void CommittingWithoutChangesIsANoOp()
    {
        long before = _db.GetStatistics().Txid;
        using (var tx = _db.BeginWrite())
        {
            tx.Commit();
        }

        Assert.That(_db.GetStatistics().Txid, Is.EqualTo(before));
    }

    [Test]
    public void StatisticsCountPagesDepthEntriesAndFileSize()
    {
        Commit(tx =>
        {
            var b = tx.CreateBucket("b");
            for (int i = 0; i < 5000; i++)
            {
                b.Put(BigEndian(i), new byte[20]);
            }
        });

        var stats = _db.GetStatistics();
        Assert.That(stats.EntryCount, Is.EqualTo(5000));
        Assert.That(stats.BucketCount, Is.EqualTo(1));
        Assert.That(stats.TreeDepth, Is.EqualTo(3));
        Assert.That(stats.FileSizeBytes, Is.EqualTo(stats.PageCount * 1024));
        Assert.That(stats.UsedPageCount, Is.EqualTo(stats.PageCount - stats.FreePageCount));
        var report = _db.Check();
        Assert.That(report.ReachablePageCount + report.FreePageCount, Is.EqualTo(stats.PageCount));
        Assert.That(report.TreeDepth, Is.EqualTo(3));
    }

    [Test]
    public void SequentialInsertsFillLeavesAlmostCompletely()
    {
        Commit(tx =>
        {
            var b = tx.CreateBucket("b");
            for (int i = 0; i < 20_000; i++)
            {
                b.Put(BigEndian(i), new byte[20]);
            }
        });

        // 20,000 entries of 2 + 8 + 4 + 20 bytes on 992-byte page bodies: 686 full pages.
        var report = _db.Check();
        Assert.That(report.ReachablePageCount, Is.LessThan(686 * 1.05));
    }

    private void Commit(Action<Transaction> change)
    {
        using var tx = _db.BeginWrite();
        change(tx);
        tx.Commit();
    }

    private static byte[] BigEndian(int value)
    {
        var bytes = new byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes, value);
        return bytes;
    }
}
