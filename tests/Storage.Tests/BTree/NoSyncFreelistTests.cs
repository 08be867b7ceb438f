using System.Buffers.Binary;
using EmbeddedRaft.Storage.BTree;
using EmbeddedRaft.Storage.IO;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Storage.Tests.BTree.BTreeTestSupport;

namespace EmbeddedRaft.Storage.Tests.BTree;

/// <summary>
/// A NoSync commit writes no freelist run (no durable meta page could name it: a crash falls back to
/// the last synced commit), so the replicated store's 100 ms batches stop rewriting a freelist of
/// thousands of ids each. What must hold instead: the run a synced commit wrote stays intact while
/// NoSync commits follow it, and making those commits durable (<see cref="BTreeDatabase.Sync"/>,
/// <see cref="BTreeDatabase.Dispose"/>) writes their freelist first — a crash at any point of that
/// sync leaves a database that opens, passes Check and holds the synced state or the NoSync one.
/// </summary>
public class NoSyncFreelistTests
{
    [Test]
    public void NoSyncCommitsWriteNoFreelistRunAndTheSyncAfterThemWritesOne()
    {
        var fs = NewDisk(2601);
        var expected = NewModel();
        using (var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages))
        {
            FillThenFreeMost(db, expected);
            var writes = RecordWrites(fs);

            PutNoSync(db, expected, count: 3);
            Assert.That(FreelistRunsWritten(fs, writes), Is.Zero, "a NoSync commit writes its tree's pages and nothing else");
            Assert.That(writes, Is.Not.Empty, "the NoSync commits wrote their pages");
            db.Check();

            writes.Clear();
            db.Sync();
            Assert.That(FreelistRunsWritten(fs, writes), Is.EqualTo(1), "the sync writes the latest commit's freelist before its meta page");
            db.Check();

            // The process dies here: only what the sync made durable counts.
            fs.Crash();
        }

        fs.Restart();
        using var reopened = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        reopened.Check();
        Assert.That(reopened.OpenReport.FreelistRebuilt, Is.False, "the freelist the sync wrote is sound");
        Assert.That(Difference(new() { ["b"] = expected }, ReadAll(reopened)), Is.Null);
    }

    /// <summary>The disk's seed decides which unflushed writes a crash keeps, drops or tears; a soak (BTREE_SOAK=1) runs 100 of them.</summary>
    private static IEnumerable<int> DiskSeeds() => Seeds(2602, Soak ? 100 : 1);

    [Test]
    public void ACrashWhileNoSyncCommitsAreMadeDurableLeavesTheSyncedStateOrTheirs([ValueSource(nameof(DiskSeeds))] int seed, [Values] bool byDispose)
    {
        TestContext.Out.WriteLine($"disk seed {seed} (reproduce with BTREE_SEED={seed})");
        var synced = NewModel();
        var noSync = NewModel();
        var clean = NewDisk(seed);
        (long before, bool crashed) = Run(clean, synced, noSync, byDispose, crashAt: null);
        Assert.That(crashed, Is.False);
        long total = clean.OperationCount;
        Assert.That(total, Is.GreaterThan(before + 2), "the sync writes pages, flushes, writes the meta page and flushes");

        for (long crashAt = before + 1; crashAt <= total; crashAt++)
        {
            var fs = NewDisk(seed);
            (_, crashed) = Run(fs, NewModel(), NewModel(), byDispose, crashAt);
            string where = $"disk seed {seed}, crash after call {crashAt} of {total} (the sync starts after call {before}; by {(byDispose ? "Dispose" : "Sync")}; reproduce with BTREE_SEED={seed})";
            Assert.That(crashed, Is.True, where);
            fs.Restart();

            using var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
            db.Check();
            var actual = ReadAll(db);
            Assert.That(
                Difference(new() { ["b"] = synced }, actual) is null || Difference(new() { ["b"] = noSync }, actual) is null,
                Is.True,
                $"{where}: neither the synced state ({Difference(new() { ["b"] = synced }, actual)}) nor the NoSync one ({Difference(new() { ["b"] = noSync }, actual)})");

            // The recovered database keeps working: its freelist is sound enough to commit on.
            using (var tx = db.BeginWrite())
            {
                tx.CreateBucketIfNotExists("after-crash").Put([1, 2, 3], new byte[300]);
                tx.Commit();
            }

            db.Check();
        }
    }

    /// <summary>Synced commits that leave many free pages, then NoSync commits that reuse some of them, then the sync; returns the operation count before the sync.</summary>
    private static (long BeforeSync, bool Crashed) Run(FaultInjectingFileSystem fs, SortedDictionary<byte[], byte[]> synced, SortedDictionary<byte[], byte[]> noSync, bool byDispose, long? crashAt)
    {
        long beforeSync = 0;
        BTreeDatabase? db = null;
        try
        {
            db = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
            FillThenFreeMost(db, synced);
            foreach (var (key, value) in synced)
            {
                noSync[key] = value;
            }

            // Pages the synced commits freed are released now, so these reuse them: the last synced
            // commit's run lists them as free, and a meta page naming it after them would be wrong.
            PutNoSync(db, noSync, count: 4);
            beforeSync = fs.OperationCount;
            fs.CrashAfterOperation = crashAt;
            if (byDispose)
            {
                db.Dispose();
            }
            else
            {
                db.Sync();
                db.Dispose();
            }

            return (beforeSync, false);
        }
        catch (SimulatedCrashException)
        {
            db?.Dispose();
            return (beforeSync, true);
        }
    }

    /// <summary>Synced: 300 keys with 200-byte values (1 KiB pages), then three of every four deleted: ~200 free pages, a freelist run of two.</summary>
    private static void FillThenFreeMost(BTreeDatabase db, SortedDictionary<byte[], byte[]> model)
    {
        var random = new Random(2600);
        using (var tx = db.BeginWrite())
        {
            var bucket = tx.CreateBucket("b");
            for (int i = 0; i < 300; i++)
            {
                var value = RandomBytes(random, 200);
                bucket.Put(Key(i), value);
                model[Key(i)] = value;
            }

            tx.Commit();
        }

        using (var tx = db.BeginWrite())
        {
            var bucket = tx.OpenBucket("b")!;
            for (int i = 0; i < 300; i++)
            {
                if (i % 4 != 0)
                {
                    bucket.Delete(Key(i));
                    model.Remove(Key(i));
                }
            }

            tx.Commit();
        }

        // One more synced commit: the pages the deletes freed are released to it and listed free in its run.
        using (var tx = db.BeginWrite())
        {
            tx.OpenBucket("b")!.Put(Key(1), [1]);
            model[Key(1)] = [1];
            tx.Commit();
        }
    }

    private static void PutNoSync(BTreeDatabase db, SortedDictionary<byte[], byte[]> model, int count)
    {
        for (int c = 0; c < count; c++)
        {
            using var tx = db.BeginWrite();
            var bucket = tx.OpenBucket("b")!;
            for (int i = 0; i < 20; i++)
            {
                var key = Key(1000 + (c * 20) + i);
                var value = new byte[150];
                value[0] = (byte)c;
                bucket.Put(key, value);
                model[key] = value;
            }

            tx.Commit(CommitDurability.NoSync);
        }
    }

    private static byte[] Key(int i)
    {
        var key = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(key, i);
        return key;
    }

    private static List<FaultOperation> RecordWrites(FaultInjectingFileSystem fs)
    {
        var writes = new List<FaultOperation>();
        fs.FailWhen = op =>
        {
            if (op.Kind == FaultOperationKind.Write && op.Path == DatabasePath)
            {
                writes.Add(op);
            }

            return false;
        };
        return writes;
    }

    /// <summary>Freelist runs that start inside the recorded writes: a page whose header says kind freelist and names its own id.</summary>
    private static int FreelistRunsWritten(FaultInjectingFileSystem fs, List<FaultOperation> writes)
    {
        int pageSize = SmallPages.PageSizeBytes;
        using var file = fs.Open(DatabasePath, FileOpenMode.ReadOnly);
        var page = new byte[pageSize];
        int runs = 0;
        foreach (var write in writes)
        {
            for (long offset = write.Offset; offset < write.Offset + write.Length; offset += pageSize)
            {
                file.Read(offset, page);
                var header = PageHeader.Read(page);
                if (header.Kind == PageKind.Freelist && header.PageId == offset / pageSize)
                {
                    runs++;
                }
            }
        }

        return runs;
    }
}
