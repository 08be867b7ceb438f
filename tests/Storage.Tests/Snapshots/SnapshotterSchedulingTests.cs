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
}
