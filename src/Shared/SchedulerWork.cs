namespace EmbeddedRaft;

/// <summary>
/// Queues a work item on a node's scheduler: the thread pool without an allocation on the default
/// scheduler, otherwise a task on the custom one (the deterministic mode's), so that what the item
/// completes is completed there, never on the thread that queued it.
/// </summary>
internal static class SchedulerWork
{
    internal static void Queue(IThreadPoolWorkItem item, TaskScheduler scheduler)
    {
        if (scheduler == TaskScheduler.Default)
        {
            ThreadPool.UnsafeQueueUserWorkItem(item, preferLocal: false);
        }
        else
        {
            _ = Task.Factory.StartNew(static i => ((IThreadPoolWorkItem)i!).Execute(), item, CancellationToken.None, TaskCreationOptions.DenyChildAttach, scheduler);
        }
    }
}
