using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>
/// DedicatedWorkThread: the thread a node releases its callers on and the process's background-disk
/// thread. Work runs on that one thread, in the order queued, and nothing queued is ever dropped.
/// </summary>
[TestFixture]
public sealed class DedicatedWorkThreadTests
{
    [Test]
    public async Task WorkItemsAndTasksRunInTheOrderQueuedOnTheThreadItselfNotOnThePool()
    {
        using var thread = new DedicatedWorkThread("test work");
        var ran = new List<(int Order, int Thread, bool Pool)>();
        var tasks = new List<Task>();
        for (var i = 0; i < 200; i++)
        {
            var order = i;
            void Record()
            {
                lock (ran)
                {
                    ran.Add((order, Environment.CurrentManagedThreadId, Thread.CurrentThread.IsThreadPoolThread));
                }
            }

            if (i % 2 == 0)
            {
                var item = new RecordingItem(Record);
                thread.Queue(item);
                tasks.Add(item.Done.Task);
            }
            else
            {
                tasks.Add(Task.Factory.StartNew(Record, CancellationToken.None, TaskCreationOptions.DenyChildAttach, thread));
            }
        }

        await Task.WhenAll(tasks).WaitAsync(Waits.Limit);

        Assert.That(ran.Select(r => r.Order), Is.EqualTo(Enumerable.Range(0, 200)), "run in the order queued");
        Assert.That(ran.Select(r => r.Thread).Distinct().Count(), Is.EqualTo(1), "all on one thread");
        Assert.That(ran.Any(r => r.Pool), Is.False, "never on a thread-pool thread");
    }

    [Test]
    public async Task AnAsyncMethodStartedOnItResumesOnItAfterAnAwaitThatReallyWaits()
    {
        using var thread = new DedicatedWorkThread("test work");
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var threads = new List<bool>();
        var work = Task.Factory.StartNew(
            async () =>
            {
                threads.Add(thread.IsCurrentThread);
                await gate.Task;
                threads.Add(thread.IsCurrentThread);
            },
            CancellationToken.None,
            TaskCreationOptions.DenyChildAttach,
            thread).Unwrap();

        // Completed from a pool thread: the rest of the method must still come back to the thread.
        _ = Task.Run(gate.SetResult);
        await work.WaitAsync(Waits.Limit);

        Assert.That(threads, Is.EqualTo(new[] { true, true }));
    }

    [Test]
    public async Task WorkQueuedAfterDisposeStillRunsOnThePool()
    {
        var thread = new DedicatedWorkThread("test work");
        var blocker = new ManualResetEventSlim();
        var first = new RecordingItem(() => blocker.Wait(Waits.Limit));
        var second = new RecordingItem(() => { });
        thread.Queue(first);
        thread.Queue(second);
        thread.Dispose();
        var late = new RecordingItem(() => { });
        thread.Queue(late);

        Assert.That(await late.Done.Task.WaitAsync(Waits.Limit), Is.True, "queued after Dispose: run on the pool");
        blocker.Set();
        Assert.That(await second.Done.Task.WaitAsync(Waits.Limit), Is.False, "queued before Dispose: still run on the thread");
    }

    private sealed class RecordingItem(Action action) : IThreadPoolWorkItem
    {
        public TaskCompletionSource<bool> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Execute()
        {
            action();
            Done.SetResult(Thread.CurrentThread.IsThreadPoolThread);
        }
    }
}
