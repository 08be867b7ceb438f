using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Store;

/// <summary>Compaction in steps between write batches, and the store on the real disk.</summary>
public sealed class CompactionTests
{
    [Test]
    public async Task AWriteQueuedDuringAPhysicalCompactionIsServedWhileTheCompactionGoesOn()
    {
        var fs = new FaultInjectingFileSystem(1);
        await using var store = OpenOn(fs, new MvccStoreOptions { CompactionBatchLimit = 2 });
        for (int i = 0; i < 100; i++)
        {
            await store.PutAsync(new PutRequest { Key = B($"k{i % 5}"), Value = B($"{i}") });
        }

        using var stepInFlush = new ManualResetEventSlim();
        using var releaseStep = new ManualResetEventSlim();
        int flushes = 0;
        fs.BeforeEntering = (kind, _) =>
        {
            // The compaction's scheduling commit flushes twice; the third flush belongs to its first B+tree step.
            if (kind == FaultOperationKind.Flush && Interlocked.Increment(ref flushes) == 3)
            {
                stepInFlush.Set();
                releaseStep.Wait();
            }
        };
        var compaction = store.CompactAsync(store.Revision, physical: true).AsTask();
        stepInFlush.WaitOrFail("the compaction's first step reaching its flush");
        var put = store.PutAsync(new PutRequest { Key = B("late"), Value = B("v") }).AsTask();
        releaseStep.Set();

        Assert.That(put.ResultOrFail("the put").Header.Revision, Is.EqualTo(102));
        compaction.WaitOrFail("the compaction");
        fs.BeforeEntering = null;
        Assert.That(store.IndexedKeyCount, Is.EqualTo(6));
        Assert.That(store.Get("k0").Kvs.Single().ModRevision, Is.EqualTo(97));
    }

    [Test]
    public async Task MvccStoreOpenWorksOnTheRealDisk()
    {
        string directory = Path.Combine(Path.GetTempPath(), "mvcc-open-" + Guid.NewGuid().ToString("N"));
        try
        {
            await using (var store = MvccStore.Open(directory))
            {
                await store.PutAsync(new PutRequest { Key = B("k"), Value = B("v") });
            }

            await using var reopened = MvccStore.Open(directory);
            Assert.That(S(reopened.Get("k").Kvs.Single().Value), Is.EqualTo("v"));
            Assert.That(File.Exists(Path.Combine(directory, "mvcc.db")), Is.True);
            Assert.Throws<EmbeddedRaft.Storage.StorageLockedException>(() => MvccStore.Open(directory));
        }
        finally
        {
            System.IO.Directory.Delete(directory, recursive: true);
        }
    }
}
