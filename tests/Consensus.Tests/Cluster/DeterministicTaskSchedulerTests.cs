using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Cluster;

/// <summary>The single-threaded scheduler the whole-cluster tests run on: FIFO, on the caller's thread, nothing until driven.</summary>
[TestFixture]
public sealed class DeterministicTaskSchedulerTests
{
    [Test]
    public void QueuedWorkRunsOnlyWhenDrivenInFifoOrderOnTheCallingThread()
    {
        var scheduler = new DeterministicTaskScheduler();
        var order = new List<(string Step, int Thread)>();

        Task first = scheduler.Run(async () =>
        {
            order.Add(("a1", Environment.CurrentManagedThreadId));
            await Task.Yield();
            order.Add(("a2", Environment.CurrentManagedThreadId));
        });
        Task second = scheduler.Run(() =>
        {
            order.Add(("b1", Environment.CurrentManagedThreadId));
            return Task.CompletedTask;
        });

        Assert.That(order, Is.Empty);
        int ran = scheduler.RunUntilIdle();

        Assert.That(order.Select(o => o.Step), Is.EqualTo(new[] { "a1", "b1", "a2" }));
        Assert.That(order.Select(o => o.Thread).Distinct(), Is.EqualTo(new[] { Environment.CurrentManagedThreadId }));
        Assert.That(first.IsCompletedSuccessfully && second.IsCompletedSuccessfully, Is.True);
        Assert.That(ran, Is.GreaterThanOrEqualTo(3));
        Assert.That(scheduler.QueuedTasks, Is.Zero);
    }

    [Test]
    public void ContinuationsOfWorkCompletedFromOutsideComeBackToTheScheduler()
    {
        var scheduler = new DeterministicTaskScheduler();
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int? resumedOn = null;
        Task waiting = scheduler.Run(async () =>
        {
            await signal.Task;
            resumedOn = Environment.CurrentManagedThreadId;
        });
        scheduler.RunUntilIdle();

        signal.SetResult();
        Assert.That(resumedOn, Is.Null, "the continuation waits in the queue");
        scheduler.RunUntilIdle();

        Assert.That(resumedOn, Is.EqualTo(Environment.CurrentManagedThreadId));
        Assert.That(waiting.IsCompletedSuccessfully, Is.True);
    }

    [Test]
    public void WorkThatAlwaysQueuesMoreWorkFailsInsteadOfHanging()
    {
        var scheduler = new DeterministicTaskScheduler();
        _ = scheduler.Run(async () =>
        {
            while (true)
            {
                await Task.Yield();
            }
        });

        Assert.Throws<InvalidOperationException>(() => scheduler.RunUntilIdle(maxTasks: 1000));
    }
}
