using EmbeddedRaft.Storage;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Images.ImageTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Images;

/// <summary>
/// A crash at every file-system operation of an in-place restore — writing the new file beside,
/// its fsync, closing the old one, the rename, the directory sync, the reopen — leaves, after the
/// simulated machine restarts (unflushed writes kept, dropped or torn; unsynced renames undone),
/// either the old store whole or the new one whole, never a mix, and no restore file behind.
/// </summary>
public sealed class ImageRestoreCrashTests
{
    [TestCaseSource(typeof(ImageTestSupport), nameof(Seeds))]
    public async Task ACrashAnywhereInARestoreLeavesTheOldStoreOrTheNewOne(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with IMAGE_SEED={seed}");
        var clock = Leases.LeaseTestSupport.Clock();
        var options = Options(clock);

        // The image, from a store on a disk of its own.
        byte[] image;
        string restored;
        await using (var source = MvccStore.Open(new FaultInjectingFileSystem(seed), SourceDirectory, options))
        {
            await WriteAsync(source, new Random(seed), 60, 1, "s");
            (image, _) = await ImageBytesAsync(source);
            restored = Describe(source);
        }

        // Once without a crash: the old state, and how many operations the restore takes.
        var counting = new FaultInjectingFileSystem(seed);
        string old;
        long before;
        await using (var target = await PrepareTargetAsync(counting, seed, options))
        {
            old = Describe(target);
            before = counting.OperationCount;
            await target.RestoreImageAsync(new MemoryStream(image));
            Assert.That(Describe(target), Is.EqualTo(restored), "without a crash the restore completes");
        }

        long total = counting.OperationCount - before;
        TestContext.Out.WriteLine($"the restore takes {total} file-system operations; crashing after each");
        var outcomes = new List<string>();
        for (long crashAt = 1; crashAt <= total; crashAt++)
        {
            string where = $"seed {seed}, crash after operation {crashAt} of the restore's {total}";
            var fs = new FaultInjectingFileSystem((seed * 7919) + (int)crashAt);
            var target = await PrepareTargetAsync(fs, seed, options);
            fs.CrashAfterOperation = fs.OperationCount + crashAt;
            try
            {
                await target.RestoreImageAsync(new MemoryStream(image));
            }
            catch (Exception e) when (e is SimulatedCrashException or IOException or StorageFaultedException)
            {
                // The machine went down mid-restore.
            }

            DisposeAfterCrash(target);
            fs.Restart();
            await using var reopened = MvccStore.Open(fs, TargetDirectory, options);
            string found = Describe(reopened);
            Assert.That(found, Is.AnyOf(old, restored), $"{where}: the old store or the new one");
            outcomes.Add(found == old ? "old" : "new");
            Assert.That(fs.AllFiles().Where(f => f.Contains(MvccStore.IncomingSuffix, StringComparison.Ordinal)), Is.Empty, $"{where}: no restore file is left behind");

            // Either way the store takes writes after what it holds.
            await reopened.PutAsync(new PutRequest { Key = B("after"), Value = B("crash") }, reopened.ConsistentIndex + 1);
        }

        TestContext.Out.WriteLine($"outcomes: {string.Join(" ", outcomes)}");
        Assert.That(outcomes, Does.Contain("old").And.Contain("new"), "crashes before the rename keep the old store, after it the new one");
        Assert.That(outcomes[^1], Is.EqualTo("new"), "a crash after the last operation keeps the new store");
    }

    /// <summary>The target's own history, synced, so a crash cannot take it back.</summary>
    private static async Task<MvccStore> PrepareTargetAsync(FaultInjectingFileSystem fs, int seed, MvccStoreOptions options)
    {
        var target = MvccStore.Open(fs, TargetDirectory, options);
        await WriteAsync(target, new Random(seed + 1_000), 30, 1, "t");
        await target.SyncAsync();
        return target;
    }

    private static void DisposeAfterCrash(MvccStore store)
    {
        try
        {
            store.Dispose();
        }
        catch (Exception e) when (e is SimulatedCrashException or IOException)
        {
            // The disk is gone; what matters is what the restart finds.
        }
    }
}
