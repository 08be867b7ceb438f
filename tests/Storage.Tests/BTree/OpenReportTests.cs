using EmbeddedRaft.Storage.BTree;
using EmbeddedRaft.TestSupport.IO;
using Microsoft.Extensions.Logging;
using static EmbeddedRaft.Storage.Tests.BTree.BTreeTestSupport;

namespace EmbeddedRaft.Storage.Tests.BTree;

/// <summary>
/// Every fallback the open takes is observable: <see cref="BTreeDatabase.OpenReport"/> says which
/// meta page it used, which one was damaged and why, and whether it rebuilt the freelist; the same
/// goes to <see cref="BTreeOptions.Logger"/> as warnings. Reproduce with BTREE_SEED=N.
/// </summary>
public class OpenReportTests
{
    private const int PageSize = 1024;

    [Test]
    public void ANewFileReportsThatItWasCreatedAndFoundNoDamage()
    {
        var fs = NewDisk(1);
        var logger = new RecordingLogger();
        using (var db = BTreeDatabase.Open(fs, DatabasePath, WithLogger(logger)))
        {
            Assert.That(db.OpenReport, Is.EqualTo(new BTreeOpenReport { Created = true, MetaSlot = 0, Txid = 0 }));
        }

        using var reopened = BTreeDatabase.Open(fs, DatabasePath, WithLogger(logger));
        Assert.That(reopened.OpenReport.Created, Is.False);
        Assert.That(reopened.OpenReport.FoundDamage, Is.False);
        Assert.That(logger.Entries, Is.Empty);
    }

    [Test]
    public void ADamagedNewestMetaPageOpensThePreviousCommitAndSaysWhichPageAndWhy()
    {
        var fs = NewDisk(2);
        var (newestSlot, newestTxid) = CommitThree(fs);
        fs.FlipBit(DatabasePath, (newestSlot * PageSize) + 40, 3);

        var logger = new RecordingLogger();
        using var db = BTreeDatabase.Open(fs, DatabasePath, WithLogger(logger));

        var report = db.OpenReport;
        Assert.That(report.Txid, Is.EqualTo(newestTxid - 1), "the previous commit");
        Assert.That(report.MetaSlot, Is.EqualTo(1 - newestSlot));
        Assert.That(report.DamagedMetaSlot, Is.EqualTo(newestSlot));
        Assert.That(report.DamagedMetaOffsetBytes, Is.EqualTo(newestSlot * PageSize));
        Assert.That(report.DamagedMetaReason, Is.EqualTo("checksum mismatch"));
        Assert.That(report.FoundDamage, Is.True);
        var warning = logger.Entries.Single();
        Assert.That(warning.Level, Is.EqualTo(LogLevel.Warning));
        Assert.That(warning.Message, Does.Contain($"meta page {newestSlot}").And.Contain($"commit {newestTxid - 1}"));
        db.Check();
    }

    private static IEnumerable<int> FreelistSeeds() => Seeds(700, Soak ? 200 : 12);

    [TestCaseSource(nameof(FreelistSeeds))]
    public void AFlippedBitInTheFreelistIsRepairedAtOpenFromTheReachablePages(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (reproduce with BTREE_SEED={seed})");
        var random = new Random(seed);
        var fs = NewDisk(seed);
        var model = NewModel();
        long freelistPage;
        int freelistPages;
        long txid;
        using (var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages))
        {
            // Enough commits, deletes and overflow values that the freelist lists many pages.
            for (int commit = 0; commit < 20; commit++)
            {
                using var tx = db.BeginWrite();
                var bucket = tx.CreateBucketIfNotExists("b");
                for (int i = 0; i < 60; i++)
                {
                    var key = BitConverter.GetBytes(random.Next(300));
                    if (random.Next(3) == 0)
                    {
                        bucket.Delete(key);
                        model.Remove(key);
                    }
                    else
                    {
                        var value = RandomBytes(random, random.Next(10) == 0 ? random.Next(300, 3000) : random.Next(1, 100));
                        bucket.Put(key, value);
                        model[key] = value;
                    }
                }

                tx.Commit();
            }

            using var read = db.BeginRead();
            (freelistPage, freelistPages, txid) = (read.Snapshot.FreelistPage, read.Snapshot.FreelistPageCount, read.Snapshot.Txid);
        }

        long offset = (freelistPage * PageSize) + random.Next(freelistPages * PageSize);
        fs.FlipBit(DatabasePath, offset, random.Next(8));
        string where = $"seed {seed}: bit flipped at offset {offset} in the freelist run at page {freelistPage}; reproduce with BTREE_SEED={seed}";

        var logger = new RecordingLogger();
        using (var db = BTreeDatabase.Open(fs, DatabasePath, WithLogger(logger)))
        {
            var report = db.OpenReport;
            Assert.That(report.FreelistRebuilt, Is.True, where);
            Assert.That(report.FreelistDamage, Does.StartWith($"page {freelistPage}:"), where);
            Assert.That(report.DamagedMetaSlot, Is.Null, where);
            Assert.That(report.Txid, Is.EqualTo(txid), where);
            Assert.That(db.GetStatistics().Txid, Is.EqualTo(txid + 1), $"{where}: the rebuilt freelist is written by one commit");
            Assert.That(logger.Entries.Single().Message, Does.Contain("freelist"), where);
            db.Check();
            Assert.That(Difference(new() { ["b"] = model }, ReadAll(db)), Is.Null, where);

            // The rebuilt free pages are reused safely: more commits, each checked.
            for (int commit = 0; commit < 5; commit++)
            {
                using (var tx = db.BeginWrite())
                {
                    for (int i = 0; i < 40; i++)
                    {
                        var key = BitConverter.GetBytes(random.Next(300));
                        var value = RandomBytes(random, random.Next(1, 100));
                        tx.OpenBucket("b")!.Put(key, value);
                        model[key] = value;
                    }

                    tx.Commit();
                }

                db.Check();
            }
        }

        using var reopened = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        Assert.That(reopened.OpenReport.FoundDamage, Is.False, $"{where}: the repair is durable");
        Assert.That(Difference(new() { ["b"] = model }, ReadAll(reopened)), Is.Null, where);
    }

    [Test]
    public void ADamagedNewestMetaPageAndADamagedFreelistBehindItAreBothRepairedAndReported()
    {
        var fs = NewDisk(8);
        long previousTxid;
        long previousFreelistPage;
        using (var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages))
        {
            for (int i = 0; i < 4; i++)
            {
                using var tx = db.BeginWrite();
                tx.CreateBucketIfNotExists("b").Put(BitConverter.GetBytes(i), new byte[200]);
                tx.Commit();
            }

            using (var read = db.BeginRead())
            {
                (previousTxid, previousFreelistPage) = (read.Snapshot.Txid, read.Snapshot.FreelistPage);
            }

            using (var tx = db.BeginWrite())
            {
                tx.OpenBucket("b")!.Put("newest"u8, "lost"u8);
                tx.Commit();
            }
        }

        int newestSlot;
        using (var probe = BTreeDatabase.Open(fs, DatabasePath, SmallPages))
        {
            newestSlot = probe.OpenReport.MetaSlot;
        }

        fs.FlipBit(DatabasePath, (newestSlot * PageSize) + 60, 2);
        fs.FlipBit(DatabasePath, (previousFreelistPage * PageSize) + 40, 5);

        using var reopened = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        var report = reopened.OpenReport;
        Assert.That(report.Txid, Is.EqualTo(previousTxid));
        Assert.That(report.DamagedMetaSlot, Is.EqualTo(newestSlot));
        Assert.That(report.FreelistRebuilt, Is.True);
        Assert.That(report.FreelistDamage, Does.StartWith($"page {previousFreelistPage}:"));
        reopened.Check();
        using var check = reopened.BeginRead();
        Assert.That(check.OpenBucket("b")!.Count, Is.EqualTo(4), "the commit whose meta page was damaged is the one lost");
    }

    [Test]
    public void OpenCreatesAMissingDirectory()
    {
        var fs = new FaultInjectingFileSystem(5);
        const string path = "/var/lib/app/tree.db";

        using (var db = BTreeDatabase.Open(fs, path, SmallPages))
        {
            Assert.That(db.OpenReport.Created, Is.True);
            using var tx = db.BeginWrite();
            tx.CreateBucket("b").Put("k"u8, "v"u8);
            tx.Commit();
        }

        fs.Restart();
        Assert.That(fs.DirectoryExists("/var/lib/app"), Is.True);
        using var reopened = BTreeDatabase.Open(fs, path, SmallPages);
        using var read = reopened.BeginRead();
        Assert.That(read.OpenBucket("b")!.Get("k"u8), Is.EqualTo("v"u8.ToArray()));
    }

    [Test]
    public void TheWrongPageSizeIsNamedEvenWhenMetaPageZeroIsDamaged()
    {
        var fs = NewDisk(6);
        CommitThree(fs, pageSizeBytes: 4096);
        fs.FlipBit(DatabasePath, 50, 1);

        var error = Assert.Throws<ArgumentException>(() => BTreeDatabase.Open(fs, DatabasePath, SmallPages).Dispose())!;

        Assert.That(error.Message, Does.Contain("PageSizeBytes 4096").And.Contain("meta page 0 is damaged: checksum mismatch").And.Contain("the options say 1024"));
        using var db = BTreeDatabase.Open(fs, DatabasePath, new BTreeOptions { PageSizeBytes = 4096 });
        Assert.That(db.OpenReport.DamagedMetaSlot, Is.EqualTo(0), "with the right page size it opens, from meta page 1");
    }

    [Test]
    public void AdoptExistingPageSizeFindsThePageSizeInMetaPageOneWhenMetaPageZeroIsDamaged()
    {
        var fs = NewDisk(7);
        CommitThree(fs, pageSizeBytes: 4096);
        fs.FlipBit(DatabasePath, 50, 1);

        using var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages with { AdoptExistingPageSize = true });

        Assert.That(db.Options.PageSizeBytes, Is.EqualTo(4096));
        Assert.That(db.OpenReport.DamagedMetaSlot, Is.EqualTo(0), "opened from meta page 1, and the damage reported as usual");
    }

    [Test]
    public void BothMetaPagesDamagedNamesWhatIsWrongWithEach()
    {
        var fs = NewDisk(7);
        CommitThree(fs);
        fs.FlipBit(DatabasePath, 50, 0);
        fs.FlipBit(DatabasePath, PageSize + 36, 0);

        var error = Assert.Throws<CorruptionException>(() => BTreeDatabase.Open(fs, DatabasePath, SmallPages).Dispose())!;

        Assert.That(error.Reason, Does.Contain("page 0: checksum mismatch").And.Contain($"page 1, at byte {PageSize}: checksum mismatch"));
    }

    private static BTreeOptions WithLogger(ILogger logger) =>
        new() { PageSizeBytes = PageSize, MaxKeySizeBytes = 64, PageCacheSizeBytes = 64 * 1024, Logger = logger };

    /// <summary>Three synced commits; returns the meta page and id of the newest.</summary>
    private static (int Slot, long Txid) CommitThree(FaultInjectingFileSystem fs, int pageSizeBytes = PageSize)
    {
        using (var db = BTreeDatabase.Open(fs, DatabasePath, new BTreeOptions { PageSizeBytes = pageSizeBytes }))
        {
            for (int i = 0; i < 3; i++)
            {
                using var tx = db.BeginWrite();
                tx.CreateBucketIfNotExists("b").Put(BitConverter.GetBytes(i), BitConverter.GetBytes(i));
                tx.Commit();
            }
        }

        using var reopened = BTreeDatabase.Open(fs, DatabasePath, new BTreeOptions { PageSizeBytes = pageSizeBytes });
        return (reopened.OpenReport.MetaSlot, reopened.OpenReport.Txid);
    }

    private sealed class RecordingLogger : ILogger
    {
        public List<(LogLevel Level, string Message)> Entries { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Entries.Add((logLevel, formatter(state, exception)));
    }
}
