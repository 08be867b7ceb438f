using EmbeddedRaft.Storage.BTree;
using EmbeddedRaft.TestSupport;
using static EmbeddedRaft.Storage.Tests.BTree.BTreeTestSupport;

namespace EmbeddedRaft.Storage.Tests.BTree;

/// <summary>
/// The writer gate seen from async callers: BeginWriteAsync, SyncAsync and CheckAsync wait for an
/// open writer without blocking a thread, can be cancelled without harm, and get the gate when the
/// writer ends. No test here depends on timing: a wait that must not complete is checked while the
/// gate is provably held, and every wait that must complete is bounded (Waits).
/// </summary>
public class WriterGateTests
{
    [Test]
    public async Task AWaitingBeginWriteAsyncGetsTheGateWhenTheWriterCommits()
    {
        await using var db = BTreeDatabase.Open(NewDisk(1), DatabasePath, SmallPages);
        var writer = await db.BeginWriteAsync();
        writer.CreateBucket("b").Put("first"u8, "1"u8);

        var waiting = db.BeginWriteAsync().AsTask();
        Assert.That(waiting.IsCompleted, Is.False, "the gate is held by the open writer");

        writer.Commit();
        using var next = waiting.ResultOrFail("BeginWriteAsync after the writer committed");
        Assert.That(next.OpenBucket("b")!.Get("first"u8), Is.EqualTo("1"u8.ToArray()), "the next writer starts from the commit");
        next.OpenBucket("b")!.Put("second"u8, "2"u8);
        next.Commit();
        writer.Dispose();

        using var read = db.BeginRead();
        Assert.That(read.OpenBucket("b")!.Get("second"u8), Is.EqualTo("2"u8.ToArray()));
    }

    [Test]
    public async Task AWaitingBeginWriteAsyncGetsTheGateWhenTheWriterIsDisposedWithoutCommitting()
    {
        await using var db = BTreeDatabase.Open(NewDisk(2), DatabasePath, SmallPages);
        var writer = db.BeginWrite();
        writer.CreateBucket("b");
        var waiting = db.BeginWriteAsync().AsTask();
        Assert.That(waiting.IsCompleted, Is.False);

        writer.Dispose();
        using var next = waiting.ResultOrFail("BeginWriteAsync after the writer was rolled back");
        Assert.That(next.OpenBucket("b"), Is.Null, "the rolled-back bucket is not there");
    }

    [Test]
    public async Task ACancelledWaitForTheGateThrowsAndLeavesTheDatabaseUsable()
    {
        await using var db = BTreeDatabase.Open(NewDisk(3), DatabasePath, SmallPages);
        var writer = await db.BeginWriteAsync();
        using var cancel = new CancellationTokenSource();

        var beginWrite = db.BeginWriteAsync(cancel.Token).AsTask();
        var sync = db.SyncAsync(cancel.Token).AsTask();
        var check = db.CheckAsync(cancel.Token).AsTask();
        Assert.That(new[] { beginWrite.IsCompleted, sync.IsCompleted, check.IsCompleted }, Is.All.False);

        await cancel.CancelAsync();
        foreach (var wait in new Task[] { beginWrite, sync, check })
        {
            Assert.ThrowsAsync(Is.InstanceOf<OperationCanceledException>(), async () => await wait);
        }

        // The writer kept the gate and can commit; the cancelled waits took nothing from it.
        writer.CreateBucket("b").Put("k"u8, "v"u8);
        writer.Commit();
        writer.Dispose();

        using (var next = await db.BeginWriteAsync())
        {
            next.OpenBucket("b")!.Put("k2"u8, "v2"u8);
            next.Commit(CommitDurability.NoSync);
        }

        await db.SyncAsync();
        var report = await db.CheckAsync();
        Assert.That(report.EntryCount, Is.EqualTo(2));
    }

    [Test]
    public async Task AnAlreadyCancelledTokenThrowsWithoutTakingTheGate()
    {
        await using var db = BTreeDatabase.Open(NewDisk(4), DatabasePath, SmallPages);
        Assert.ThrowsAsync(Is.InstanceOf<OperationCanceledException>(), async () => await db.BeginWriteAsync(new CancellationToken(canceled: true)));
        using var tx = db.BeginWrite();
        tx.CreateBucket("b");
        tx.Commit();
    }

    [Test]
    public async Task AWaitEndsWithObjectDisposedExceptionWhenTheDatabaseIsDisposedMeanwhile()
    {
        var db = BTreeDatabase.Open(NewDisk(5), DatabasePath, SmallPages);
        var writer = db.BeginWrite();
        var waiting = db.BeginWriteAsync().AsTask();
        await db.DisposeAsync();
        writer.Dispose();
        Assert.ThrowsAsync<ObjectDisposedException>(async () => await waiting);
        Assert.ThrowsAsync<ObjectDisposedException>(async () => await db.BeginWriteAsync());
    }

    [Test]
    public async Task DisposeAsyncSyncsNoSyncCommitsAndReleasesTheFile()
    {
        const int Seed = 6;
        TestContext.Out.WriteLine($"seed {Seed}");
        var fs = NewDisk(Seed);
        await using (var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages))
        {
            using var tx = await db.BeginWriteAsync();
            tx.CreateBucket("b").Put("k"u8, "v"u8);
            tx.Commit(CommitDurability.NoSync);
        }

        // A crash after the disposal loses nothing: the disposal synced the NoSync commit.
        fs.Restart();
        await using var reopened = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        using var read = reopened.BeginRead();
        Assert.That(read.OpenBucket("b")?.Get("k"u8), Is.EqualTo("v"u8.ToArray()));
    }
}
