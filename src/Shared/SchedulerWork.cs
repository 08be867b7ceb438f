namespace EmbeddedRaft;

/// <summary>
/// Queues a work item on a node's scheduler: the thread pool without an allocation on the default
/// scheduler, otherwise a task on the custom one (the deterministic mode's), so that what the item
/// completes is completed there, never on the thread that queued it. <c>preferLocal</c> puts a
/// pool item in the queuing worker's own queue (run by that thread as soon as its current work
/// item returns, unless an idle worker steals it first) instead of the global queue behind
/// everything queued before it.
/// </summary>
internal static class SchedulerWork
{
    internal static void Queue(IThreadPoolWorkItem item, TaskScheduler scheduler, bool preferLocal = false)
    {
        if (scheduler == TaskScheduler.Default)
        {
            ThreadPool.UnsafeQueueUserWorkItem(item, preferLocal);
        }
        else
        {
            _ = Task.Factory.StartNew(static i => ((IThreadPoolWorkItem)i!).Execute(), item, CancellationToken.None, TaskCreationOptions.DenyChildAttach, scheduler);
        }
    }
}
