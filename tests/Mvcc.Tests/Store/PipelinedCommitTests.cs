using EmbeddedRaft.Storage;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Store;

/// <summary>
/// The synced store's pipelined group commit: the writer commits a batch without a flush, hands its
/// durability to the committer thread, and applies the next batch meanwhile; a batch's writers and
/// watches hear of it only once it is durable, in commit order, and a failed sync fails every
/// write not known durable and the store.
/// </summary>
public sealed class PipelinedCommitTests
{
    private const string CommitterThread = "MvccStore committer";

    private static IEnumerable<TestCaseData> CrashCases() =>
        TestSeeds.Choose("MVCC_SEED", "MVCC_SOAK_SEEDS", first: 1, defaultCount: 2)
            .SelectMany(seed => new[] { new TestCaseData(seed, true), new TestCaseData(seed, false) });

    /// <summary>
    /// A crash while batch N's pages are written but its sync has not returned, with the batches
    /// after it applied (and, full, committed without a flush) meanwhile: no write of N or later was
    /// answered, and the reopened store is the last durable one — its revision, its keys and the
    /// consistent index stored with them, never ahead of the data — whether the crash drops the
    /// unflushed pages of N and after, keeps them or tears them (the seed decides which).
    /// </summary>
    [TestCaseSource(nameof(CrashCases))]
    public async Task ACrashBetweenABatchsApplyAndItsSyncLeavesTheLastDurableStoreWithItsConsistentIndex(int seed, bool dropUnflushed)
    {
        TestContext.Out.WriteLine($"seed {seed}, dropUnflushed {dropUnflushed}; replay with MVCC_SEED={seed}");
        var fs = new FaultInjectingFileSystem(seed);
        var options = new MvccStoreOptions { BatchLimit = 3 };
        var store = OpenOn(fs, options);
        for (int i = 1; i <= 3; i++)
        {
            await store.PutAsync(new PutRequest { Key = B($"durable{i}"), Value = B($"v{i}") }, consistentIndex: (ulong)i);
        }

        using var committerInFlush = new ManualResetEventSlim();
        using var releaseCommitter = new ManualResetEventSlim();
        fs.BeforeEntering = (kind, _) =>
        {
            if (kind == FaultOperationKind.Flush && Thread.CurrentThread.Name == CommitterThread && !committerInFlush.IsSet)
            {
                committerInFlush.Set();
                releaseCommitter.Wait();
            }
        };

        // Batch N: committed without a flush, its sync held in the committer's first flush.
        var lost = new List<Task<PutResponse>> { store.PutAsync(new PutRequest { Key = B("lost0"), Value = B("x") }, consistentIndex: 4).AsTask() };
        committerInFlush.WaitOrFail("the committer reaching batch N's flush");

        // The batches after it: applied on top of N, the full ones committed without a flush (pages written).
        for (int i = 1; i <= 6; i++)
        {
            lost.Add(store.PutAsync(new PutRequest { Key = B($"lost{i}"), Value = B("x") }, consistentIndex: (ulong)(4 + i)).AsTask());
        }

        await Waits.UntilAsync(() => store.Revision == 11, "the six writes after batch N applied while it syncs");
        Assert.That(lost.Where(w => w.IsCompleted), Is.Empty, "no write of batch N or after answered before N is durable");

        // The machine dies with N's sync in flight; the held flush then finds the disk gone.
        fs.Crash();
        releaseCommitter.Set();
        foreach (var write in lost)
        {
            Assert.That(async () => await write, Throws.InstanceOf<SimulatedCrashException>().Or.InstanceOf<IOException>().Or.InstanceOf<StorageFaultedException>());
        }

        fs.BeforeEntering = null;
        try
        {
            store.Dispose();
        }
        catch (Exception e) when (e is SimulatedCrashException or IOException)
        {
            // The disk is gone; what matters is what the restart finds.
        }

        fs.Restart(dropUnflushed);
        await using var reopened = OpenOn(fs, options);
        Assert.That(reopened.Revision, Is.EqualTo(4), "the last durable revision");
        Assert.That(reopened.ConsistentIndex, Is.EqualTo(3UL), "the consistent index stored with the last durable batch");
        var keys = reopened.Range(new RangeRequest { Key = new byte[] { 0 }, RangeEnd = KeyRange.AllKeysFrom() }).Kvs.Select(kv => S(kv.Key));
        Assert.That(keys, Is.EqualTo(new[] { "durable1", "durable2", "durable3" }));

        // The reopened store takes writes on from there.
        var next = await reopened.PutAsync(new PutRequest { Key = B("after"), Value = B("y") }, consistentIndex: 4);
        Assert.That(next.Header.Revision, Is.EqualTo(5));
    }

    [Test]
    public async Task WritesAreAppliedWhileTheBatchBeforeThemSyncsAndAnsweredOnlyOnceDurableInOrder()
    {
        var fs = new FaultInjectingFileSystem(11);
        await using var store = OpenOn(fs);
        using var watch = store.Watch(new WatchRequest { Key = B("k"), RangeEnd = B("l") });
        using var committerInFlush = new ManualResetEventSlim();
        using var releaseCommitter = new ManualResetEventSlim();
        fs.BeforeEntering = (kind, _) =>
        {
            if (kind == FaultOperationKind.Flush && Thread.CurrentThread.Name == CommitterThread && !committerInFlush.IsSet)
            {
                committerInFlush.Set();
                releaseCommitter.Wait();
            }
        };

        // The first write's batch is committed without a flush and held in the committer's flush.
        var first = store.PutAsync(new PutRequest { Key = B("k0"), Value = B("v0") }).AsTask();
        committerInFlush.WaitOrFail("the committer reaching the first batch's flush");

        // Meanwhile the writer applies the next writes: readable at once, none answered.
        var later = Enumerable.Range(1, 9).Select(i => store.PutAsync(new PutRequest { Key = B($"k{i}"), Value = B($"v{i}") }).AsTask()).ToList();
        await Waits.UntilAsync(() => store.Revision == 11, "the nine writes applied while the first batch syncs");
        Assert.That(S(store.Get("k9").Kvs.Single().Value), Is.EqualTo("v9"));
        Assert.That(first.IsCompleted || later.Any(w => w.IsCompleted), Is.False, "no write answered before its batch is durable");

        releaseCommitter.Set();
        var answered = await Task.WhenAll(later.Prepend(first));
        fs.BeforeEntering = null;
        Assert.That(answered.Select(r => r.Header.Revision), Is.EqualTo(Enumerable.Range(2, 10).Select(r => (long)r)), "answered with their revisions, in order");

        // Watchers see both batches, in revision order, each revision once.
        var events = new List<long>();
        await foreach (var response in watch.WithCancellation(CancellationToken.None))
        {
            events.AddRange(response.Events.Select(e => e.Kv.ModRevision));
            if (events.Count == 10)
            {
                break;
            }
        }

        Assert.That(events, Is.EqualTo(Enumerable.Range(2, 10).Select(r => (long)r)));
    }

    [Test]
    public async Task AFailedSyncFailsTheSyncingBatchTheBatchAppliedMeanwhileAndEveryLaterWrite()
    {
        var fs = new FaultInjectingFileSystem(12);
        var store = OpenOn(fs);
        store.Put("before", "1");
        using var committerInFlush = new ManualResetEventSlim();
        using var releaseCommitter = new ManualResetEventSlim();
        fs.BeforeEntering = (kind, _) =>
        {
            if (kind == FaultOperationKind.Flush && Thread.CurrentThread.Name == CommitterThread && !committerInFlush.IsSet)
            {
                committerInFlush.Set();
                releaseCommitter.Wait();
            }
        };
        fs.FailWhen = operation => operation.Kind == FaultOperationKind.Flush && Thread.CurrentThread.Name == CommitterThread;

        var syncing = store.PutAsync(new PutRequest { Key = B("a"), Value = B("1") }).AsTask();
        committerInFlush.WaitOrFail("the committer reaching the batch's flush");
        var appliedMeanwhile = store.PutAsync(new PutRequest { Key = B("b"), Value = B("1") }).AsTask();
        await Waits.UntilAsync(() => store.Revision == 4, "the second write applied while the first batch syncs");
        releaseCommitter.Set();

        Assert.That(async () => await syncing, Throws.InstanceOf<IOException>(), "the batch whose flush failed");
        Assert.That(async () => await appliedMeanwhile, Throws.InstanceOf<IOException>(), "the batch applied on top of it");
        Assert.That(async () => await store.PutAsync(new PutRequest { Key = B("c"), Value = B("1") }), Throws.InstanceOf<StorageFaultedException>(), "a write after the failure");
        fs.BeforeEntering = null;
        fs.FailWhen = null;
        try
        {
            store.Dispose();
        }
        catch (IOException)
        {
            // The store is faulted; what matters is what a reopen finds.
        }

        // A failed flush is never retried: after a crash the disk holds what was durable before it.
        fs.Restart(dropUnflushed: true);
        await using var reopened = OpenOn(fs);
        Assert.That(reopened.Revision, Is.EqualTo(2));
        Assert.That(S(reopened.Get("before").Kvs.Single().Value), Is.EqualTo("1"));
        Assert.That(reopened.Get("a").Kvs, Is.Empty);
    }
}
