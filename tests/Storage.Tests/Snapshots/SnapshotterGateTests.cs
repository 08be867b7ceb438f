using EmbeddedRaft.Storage.Snapshots;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Storage.Tests.Snapshots;

/// <summary>
/// The snapshotter's gate seen from async callers: a load or listing waits for a save in progress
/// without blocking a thread, a cancelled wait throws and leaves the snapshotter usable, and
/// DisposeAsync waits for the call in progress. A save is held open on purpose by a data writer
/// that waits for the test, so "in progress" is a fact, not a timing.
/// </summary>
public class SnapshotterGateTests
{
    [Test]
    public async Task ALoadWaitingForASaveInProgressGetsTheSnapshotOnceTheSaveEnds()
    {
        using var snapshotter = new Snapshotter(new FaultInjectingFileSystem(301), SnapshotTestKit.Directory, SnapshotTestKit.SmallChunks());
        var (save, finishSave) = HoldSaveOpen(snapshotter, dataBytes: 10_000);

        var load = snapshotter.LoadNewestAsync().AsTask();
        Assert.That(load.IsCompleted, Is.False, "the save holds the gate");

        finishSave.SetResult();
        save.WaitOrFail("the save");
        using var loaded = load.ResultOrFail("the load after the save").Snapshot;
        Assert.That(loaded!.Metadata.Index, Is.EqualTo(10UL));
        Assert.That(loaded.DataLengthBytes, Is.EqualTo(10_000));
    }

    [Test]
    public async Task ACancelledWaitForTheGateThrowsAndLeavesTheSnapshotterUsable()
    {
        using var snapshotter = new Snapshotter(new FaultInjectingFileSystem(302), SnapshotTestKit.Directory, SnapshotTestKit.SmallChunks());
        var (save, finishSave) = HoldSaveOpen(snapshotter, dataBytes: 100);

        using var cancel = new CancellationTokenSource();
        var load = snapshotter.LoadNewestAsync(cancel.Token).AsTask();
        var list = snapshotter.ListSnapshotsAsync(cancel.Token).AsTask();
        var secondSave = snapshotter.SaveAsync(SnapshotTestKit.Metadata(20, 1), new MemoryStream(new byte[1]), cancel.Token).AsTask();
        Assert.That(new[] { load.IsCompleted, list.IsCompleted, secondSave.IsCompleted }, Is.All.False);

        await cancel.CancelAsync();
        foreach (var wait in new Task[] { load, list, secondSave })
        {
            Assert.ThrowsAsync(Is.InstanceOf<OperationCanceledException>(), async () => await wait);
        }

        // The save in progress kept the gate and completes; the cancelled save left no trace.
        finishSave.SetResult();
        save.WaitOrFail("the save");
        Assert.That((await snapshotter.ListSnapshotsAsync()).Select(Path.GetFileName), Is.EqualTo(new[] { SnapshotFormat.FileName(1, 10) }));
        using var loaded = (await snapshotter.LoadNewestAsync()).Snapshot;
        Assert.That(loaded!.Metadata.Index, Is.EqualTo(10UL));
    }

    [Test]
    public async Task DisposeAsyncWaitsForTheSaveInProgressThenReleasesTheDirectory()
    {
        var fs = new FaultInjectingFileSystem(303);
        var snapshotter = new Snapshotter(fs, SnapshotTestKit.Directory, SnapshotTestKit.SmallChunks());
        var (save, finishSave) = HoldSaveOpen(snapshotter, dataBytes: 100);

        var dispose = snapshotter.DisposeAsync().AsTask();
        Assert.That(dispose.IsCompleted, Is.False, "the save holds the gate");
        Assert.Throws<StorageLockedException>(() => new Snapshotter(fs, SnapshotTestKit.Directory).Dispose(), "the directory is still locked");

        finishSave.SetResult();
        save.WaitOrFail("the save");
        dispose.WaitOrFail("the disposal after the save");
        await using var next = new Snapshotter(fs, SnapshotTestKit.Directory);
        using var loaded = (await next.LoadNewestAsync()).Snapshot;
        Assert.That(loaded!.Metadata.Index, Is.EqualTo(10UL), "the save finished before the lock was released");
    }

    /// <summary>
    /// Starts a save of snapshot 10 whose data writer writes <paramref name="dataBytes"/> and then
    /// waits for the test: the save holds the gate until <c>finishSave</c> is completed.
    /// </summary>
    private static (Task Save, TaskCompletionSource FinishSave) HoldSaveOpen(Snapshotter snapshotter, int dataBytes)
    {
        var dataWritten = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var finishSave = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var save = snapshotter.SaveAsync(SnapshotTestKit.Metadata(10, 1), async (stream, token) =>
        {
            await stream.WriteAsync(new byte[dataBytes], token);
            dataWritten.SetResult();
            await finishSave.Task;
        }, CancellationToken.None).AsTask();
        dataWritten.Task.WaitOrFail("the save started writing");
        return (save, finishSave);
    }
}
