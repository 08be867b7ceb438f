using EmbeddedRaft.Storage.Snapshots;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Storage.Tests.Snapshots;

/// <summary>
/// A caller on a single-threaded scheduler (a Raft node in a deterministic simulation) never has
/// its snapshot work moved off that scheduler: a save that really waits for the gate, held by
/// another save, resumes on the caller's scheduler, writes its data there and completes there.
/// With <c>ConfigureAwait(false)</c> inside the snapshotter, the gate's asynchronous release would
/// run the rest of the save on the thread pool.
/// </summary>
public class SnapshotterSchedulingTests
{
    [Test]
    public void ASaveThatWaitsForTheGateResumesOnTheCallersScheduler()
    {
        using var snapshotter = new Snapshotter(new FaultInjectingFileSystem(311), SnapshotTestKit.Directory, SnapshotTestKit.SmallChunks());
        var scheduler = new DeterministicTaskScheduler();
        var writerThreads = new List<int>();
        bool secondWaitedForTheGate = false;

        Task first = scheduler.Run(async () =>
            await snapshotter.SaveAsync(SnapshotTestKit.Metadata(10, 1), async (stream, ct) =>
            {
                // Gives the second save its turn while this one holds the gate.
                await Task.Yield();
                lock (writerThreads)
                {
                    writerThreads.Add(Environment.CurrentManagedThreadId);
                }

                await stream.WriteAsync(new byte[5_000], ct);
            }));
        Task second = scheduler.Run(async () =>
        {
            var save = snapshotter.SaveAsync(SnapshotTestKit.Metadata(20, 1), async (stream, ct) =>
            {
                lock (writerThreads)
                {
                    writerThreads.Add(Environment.CurrentManagedThreadId);
                }

                await stream.WriteAsync(new byte[5_000], ct);
            });
            secondWaitedForTheGate = !save.IsCompleted;
            await save;
        });

        scheduler.RunUntilIdle();

        Assert.That(secondWaitedForTheGate, Is.True, "the second save found the gate held, so its wait was really asynchronous");
        Assert.That(new[] { first.IsCompleted, second.IsCompleted }, Is.All.True, "both saves completed on the scheduler, none later on another thread");
        first.WaitOrFail("the first save");
        second.WaitOrFail("the second save");
        lock (writerThreads)
        {
            Assert.That(writerThreads, Is.EqualTo(new[] { Environment.CurrentManagedThreadId, Environment.CurrentManagedThreadId }), "both saves wrote their data on the driving thread");
        }
    }

    /// <summary>
    /// The same with a token that can be cancelled: <c>SemaphoreSlim.WaitAsync(token)</c>, contended,
    /// finishes its wait in a thread-pool callback, so the second save reached the scheduler again
    /// from a pool thread (the simulator's seeds 59 and 156 of 200 escaped this way).
    /// </summary>
    [Test]
    public void ACancellableSaveThatWaitsForTheGateResumesOnTheCallersScheduler()
    {
        using var snapshotter = new Snapshotter(new FaultInjectingFileSystem(312), SnapshotTestKit.Directory, SnapshotTestKit.SmallChunks());
        using var cancellation = new CancellationTokenSource();
        var scheduler = new DeterministicTaskScheduler();
        bool secondWaitedForTheGate = false;

        Task first = scheduler.Run(async () =>
            await snapshotter.SaveAsync(SnapshotTestKit.Metadata(10, 1), async (stream, ct) =>
            {
                await Task.Yield();
                await stream.WriteAsync(new byte[5_000], ct);
            }, cancellation.Token));
        Task second = scheduler.Run(async () =>
        {
            var save = snapshotter.SaveAsync(SnapshotTestKit.Metadata(20, 1), (stream, ct) => stream.WriteAsync(new byte[5_000], ct), cancellation.Token);
            secondWaitedForTheGate = !save.IsCompleted;
            await save;
        });

        scheduler.RunUntilIdle();

        Assert.That(secondWaitedForTheGate, Is.True, "the second save found the gate held, so its wait was really asynchronous");
        Assert.That(new[] { first.IsCompleted, second.IsCompleted }, Is.All.True, "both saves completed on the scheduler, none later on another thread");
        first.WaitOrFail("the first save");
        second.WaitOrFail("the second save");
        Assert.That(scheduler.QueuedOffThread, Is.Empty, "work reached the scheduler from another thread");
    }

    /// <summary>
    /// On the scheduler, a wait for the gate cancelled before the gate came throws
    /// OperationCanceledException there and does not keep the gate: the next save gets it.
    /// </summary>
    [Test]
    public void ASaveCancelledWhileWaitingForTheGateLeavesTheGateToTheNext()
    {
        using var snapshotter = new Snapshotter(new FaultInjectingFileSystem(313), SnapshotTestKit.Directory, SnapshotTestKit.SmallChunks());
        using var cancellation = new CancellationTokenSource();
        var scheduler = new DeterministicTaskScheduler();
        var release = new TaskCompletionSource();

        Task first = scheduler.Run(async () =>
            await snapshotter.SaveAsync(SnapshotTestKit.Metadata(10, 1), async (stream, ct) =>
            {
                await release.Task;
                await stream.WriteAsync(new byte[5_000], ct);
            }));
        Task cancelled = scheduler.Run(async () =>
            await snapshotter.SaveAsync(SnapshotTestKit.Metadata(20, 1), (stream, ct) => stream.WriteAsync(new byte[5_000], ct), cancellation.Token));
        scheduler.RunUntilIdle();
        Assert.That(cancelled.IsCompleted, Is.False, "the second save waits for the gate the first holds");

        scheduler.Run(() =>
        {
            cancellation.Cancel();
            return Task.CompletedTask;
        });
        scheduler.RunUntilIdle();
        Assert.That(cancelled.IsCanceled, Is.True, "the cancelled wait ended on the scheduler, before the gate came");

        scheduler.Run(() =>
        {
            release.SetResult();
            return Task.CompletedTask;
        });
        scheduler.RunUntilIdle();
        first.WaitOrFail("the first save");
        Task third = scheduler.Run(async () =>
            await snapshotter.SaveAsync(SnapshotTestKit.Metadata(30, 1), (stream, ct) => stream.WriteAsync(new byte[5_000], ct)));
        scheduler.RunUntilIdle();
        Assert.That(third.IsCompletedSuccessfully, Is.True, "the gate went back once the cancelled waiter's turn came");
        Assert.That(scheduler.QueuedOffThread, Is.Empty, "work reached the scheduler from another thread");
    }
}
