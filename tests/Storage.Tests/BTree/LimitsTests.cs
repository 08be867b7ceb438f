using EmbeddedRaft.Storage.BTree;
using static EmbeddedRaft.Storage.Tests.BTree.BTreeTestSupport;

namespace EmbeddedRaft.Storage.Tests.BTree;

/// <summary>Bad input and misuse get clear errors and change nothing.</summary>
public class LimitsTests
{
    [Test]
    public void EmptyKeysAreRefused()
    {
        using var db = BTreeDatabase.Open(NewDisk(1), DatabasePath, SmallPages);
        using var tx = db.BeginWrite();
        var error = Assert.Throws<ArgumentException>(() => tx.CreateBucket("b").Put([], "v"u8))!;
        Assert.That(error.Message, Does.Contain("empty"));
    }

    [Test]
    public void KeysLongerThanMaxKeySizeAreRefusedNamingTheOption()
    {
        using var db = BTreeDatabase.Open(NewDisk(1), DatabasePath, SmallPages);
        using var tx = db.BeginWrite();
        var bucket = tx.CreateBucket("b");
        bucket.Put(new byte[64], "fits"u8);
        var error = Assert.Throws<ArgumentException>(() => bucket.Put(new byte[65], "v"u8))!;
        Assert.That(error.Message, Does.Contain("MaxKeySizeBytes"));
        Assert.That(bucket.Count, Is.EqualTo(1));
    }

    [Test]
    public void TryGetAndDeleteRefuseKeysOutsideTheLimitsAsPutDoes()
    {
        using var db = BTreeDatabase.Open(NewDisk(1), DatabasePath, SmallPages);
        using var tx = db.BeginWrite();
        var bucket = tx.CreateBucket("b");
        bucket.Put(new byte[64], "fits"u8);

        Assert.That(Assert.Throws<ArgumentException>(() => bucket.TryGet([], out _))!.Message, Does.Contain("empty"));
        Assert.That(Assert.Throws<ArgumentException>(() => bucket.Get([]))!.Message, Does.Contain("empty"));
        Assert.That(Assert.Throws<ArgumentException>(() => bucket.Delete([]))!.Message, Does.Contain("empty"));
        Assert.That(Assert.Throws<ArgumentException>(() => bucket.TryGet(new byte[65], out _))!.Message, Does.Contain("MaxKeySizeBytes is 64"));
        Assert.That(Assert.Throws<ArgumentException>(() => bucket.Get(new byte[65]))!.Message, Does.Contain("MaxKeySizeBytes is 64"));
        Assert.That(Assert.Throws<ArgumentException>(() => bucket.Delete(new byte[65]))!.Message, Does.Contain("MaxKeySizeBytes is 64"));
        Assert.That(bucket.TryGet(new byte[64], out _), Is.True, "the longest key allowed is still found");
        Assert.That(bucket.Count, Is.EqualTo(1));
    }

    [Test]
    public void ValuesLongerThanMaxValueSizeAreRefusedNamingTheOption()
    {
        using var db = BTreeDatabase.Open(NewDisk(1), DatabasePath, new BTreeOptions { PageSizeBytes = 1024, MaxValueSizeBytes = 100 });
        using var tx = db.BeginWrite();
        var error = Assert.Throws<ArgumentException>(() => tx.CreateBucket("b").Put("k"u8, new byte[101]))!;
        Assert.That(error.Message, Does.Contain("MaxValueSizeBytes"));
    }

    [Test]
    public void WritesInsideAReadTransactionAreRefused()
    {
        using var db = BTreeDatabase.Open(NewDisk(1), DatabasePath, SmallPages);
        using (var tx = db.BeginWrite())
        {
            tx.CreateBucket("b");
            tx.Commit();
        }

        using var read = db.BeginRead();
        Assert.That(read.IsReadOnly, Is.True);
        Assert.Throws<InvalidOperationException>(() => read.OpenBucket("b")!.Put("k"u8, "v"u8));
        Assert.Throws<InvalidOperationException>(() => read.OpenBucket("b")!.Delete("k"u8));
        Assert.Throws<InvalidOperationException>(() => read.CreateBucket("c"));
        Assert.Throws<InvalidOperationException>(() => read.DeleteBucket("b"));
        Assert.Throws<InvalidOperationException>(() => read.Commit());
    }

    [Test]
    public void UseAfterDisposeIsRefused()
    {
        var db = BTreeDatabase.Open(NewDisk(1), DatabasePath, SmallPages);
        var tx = db.BeginWrite();
        var bucket = tx.CreateBucket("b");
        var cursor = bucket.CreateCursor();
        tx.Dispose();
        Assert.Throws<ObjectDisposedException>(() => bucket.Put("k"u8, "v"u8));
        Assert.Throws<ObjectDisposedException>(() => bucket.Get("k"u8));
        Assert.Throws<ObjectDisposedException>(() => cursor.First());
        Assert.Throws<ObjectDisposedException>(() => tx.Commit());
        Assert.Throws<ObjectDisposedException>(() => tx.OpenBucket("b"));

        var read = db.BeginRead();
        db.Dispose();
        Assert.Throws<ObjectDisposedException>(() => db.BeginRead());
        Assert.Throws<ObjectDisposedException>(() => db.BeginWrite());
        Assert.Throws<ObjectDisposedException>(() => read.ListBuckets());
        read.Dispose();
    }

    [Test]
    public void ASecondOpenOfTheSameFileIsRefusedWhileTheFirstHoldsIt()
    {
        var fs = NewDisk(1);
        using var first = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        Assert.Throws<StorageLockedException>(() => BTreeDatabase.Open(fs, DatabasePath, SmallPages));
    }

    [Test]
    public void OpeningWithAnotherPageSizeIsRefused()
    {
        var fs = NewDisk(1);
        BTreeDatabase.Open(fs, DatabasePath, SmallPages).Dispose();
        var error = Assert.Throws<ArgumentException>(() => BTreeDatabase.Open(fs, DatabasePath, new BTreeOptions { PageSizeBytes = 4096 }))!;
        Assert.That(error.Message, Does.Contain("1024"));
    }

    [Test]
    public void AdoptExistingPageSizeOpensAFileOfAnotherPageSizeWithItsOwnAndKeepsItsData()
    {
        var fs = NewDisk(1);
        using (var created = BTreeDatabase.Open(fs, DatabasePath, SmallPages))
        {
            using var tx = created.BeginWrite();
            tx.CreateBucket("b").Put("k"u8, new byte[700]);
            tx.Commit();
        }

        var adopting = new BTreeOptions { PageSizeBytes = 16384, AdoptExistingPageSize = true };
        using (var db = BTreeDatabase.Open(fs, DatabasePath, adopting))
        {
            Assert.That(db.Options.PageSizeBytes, Is.EqualTo(1024), "the options in use say the file's page size");
            Assert.That(db.GetStatistics().PageSizeBytes, Is.EqualTo(1024));
            using var tx = db.BeginWrite();
            tx.OpenBucket("b")!.Put("k2"u8, "v2"u8);
            tx.Commit();
        }

        // Still a 1 KiB-page file: the strict open with its real page size reads both commits.
        using var strict = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        using var read = strict.BeginRead();
        Assert.That(read.OpenBucket("b")!.Get("k"u8), Is.EqualTo(new byte[700]));
        Assert.That(read.OpenBucket("b")!.Get("k2"u8), Is.EqualTo("v2"u8.ToArray()));
    }

    [Test]
    public void AdoptExistingPageSizeCreatesANewFileWithTheOptionsPageSize()
    {
        var fs = NewDisk(1);
        using (var db = BTreeDatabase.Open(fs, DatabasePath, new BTreeOptions { PageSizeBytes = 16384, AdoptExistingPageSize = true }))
        {
            Assert.That(db.GetStatistics().PageSizeBytes, Is.EqualTo(16384));
        }

        Assert.Throws<ArgumentException>(() => BTreeDatabase.Open(fs, DatabasePath, SmallPages), "created with 16 KiB pages, so a strict 1 KiB open is refused");
    }

    [TestCase(512)]
    [TestCase(3000)]
    [TestCase(131072)]
    public void PageSizesOutsideOneTo64KiBOrNotAPowerOfTwoAreRefused(int pageSize) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new BTreeOptions { PageSizeBytes = pageSize });

    [Test]
    public void AMaxKeySizeTooLargeForThePageSizeIsRefusedAtOpen()
    {
        var options = new BTreeOptions { PageSizeBytes = 1024, MaxKeySizeBytes = 511 };
        var error = Assert.Throws<ArgumentException>(() => BTreeDatabase.Open(NewDisk(1), DatabasePath, options))!;
        Assert.That(error.Message, Does.Contain("MaxKeySizeBytes"));
    }

    [Test]
    public void AFailedCommitMakesTheDatabaseRefuseWritesUntilReopened()
    {
        var fs = NewDisk(1);
        var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        using (var first = db.BeginWrite())
        {
            first.CreateBucket("a").Put("k"u8, "v"u8);
            first.Commit();
        }

        fs.FailWhen = op => op.Kind == EmbeddedRaft.TestSupport.IO.FaultOperationKind.Flush;
        IOException failure;
        using (var tx = db.BeginWrite())
        {
            tx.CreateBucket("b").Put("k"u8, "v"u8);
            failure = Assert.Throws<IOException>(() => tx.Commit())!;
        }

        Assert.That(failure, Is.Not.InstanceOf<StorageFaultedException>(), "the failing call throws the failure itself");
        fs.FailWhen = null;

        // From then on every write refuses, naming the file and carrying the first failure, even
        // though the disk works again: nobody knows what of the failed commit reached it.
        var refusals = new List<StorageFaultedException>
        {
            Assert.Throws<StorageFaultedException>(() => db.BeginWrite())!,
            Assert.Throws<StorageFaultedException>(() => db.Sync())!,
            Assert.ThrowsAsync<StorageFaultedException>(async () => await db.BeginWriteAsync())!,
            Assert.ThrowsAsync<StorageFaultedException>(async () => await db.SyncAsync())!,
        };
        foreach (var refusal in refusals)
        {
            Assert.That(refusal.InnerException, Is.SameAs(failure));
            Assert.That(refusal.Path, Is.EqualTo(DatabasePath));
        }

        // Reads of what was committed before go on.
        using (var read = db.BeginRead())
        {
            Assert.That(read.OpenBucket("a")!.Get("k"u8), Is.EqualTo("v"u8.ToArray()));
        }

        db.Dispose();
        using var reopened = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        reopened.Check();
        using var write = reopened.BeginWrite();
        write.CreateBucketIfNotExists("b").Put("k"u8, "v"u8);
        write.Commit();
    }
}
