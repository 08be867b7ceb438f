using System.Collections.Concurrent;

namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// The callers of one applied batch's proposals, released together: one work item on the node's
/// scheduler completes each task in log order, so their continuations run one after another on that
/// thread instead of one thread-pool hand-off per caller (each of which queued ahead of the node's
/// loops at high concurrency: docs/benchmarks.md, "RaftNode cluster, session 12"). A batch of at
/// least <see cref="CallersPerExtraWorkItem"/> callers on the thread pool is drained by up to one
/// work item per core instead (<see cref="Queue"/>), so that its last caller does not wait for every
/// continuation before it on one thread while another core is idle (docs/benchmarks.md, "RaftNode
/// at 256 and 1,024 in flight, session 25"). Filled by the applier only, then queued.
/// </summary>
/// <remarks>
/// A continuation that blocks (a synchronous wait on another task, as sync-over-async code does)
/// would hold up every caller after it in the batch — forever, if it waits for one of them. So the
/// node's loop looks at the releases still running on every tick (<see cref="HelpIfStalled"/>): one
/// that completed nobody since the last look is queued again, and the new work item carries on from
/// the next caller (callers are taken one at a time through an atomic cursor, so none is completed
/// twice). A blocked continuation then delays the callers after it by at most about a tick (less
/// in a release split across cores, whose other work items carry on meanwhile). Callers are always
/// taken in log order; their continuations overlap only in a split release or after such a stall.
/// </remarks>
internal sealed class ProposalRelease<TResult> : IThreadPoolWorkItem
{
    private readonly List<(PendingProposal<TResult> Pending, TResult Result)> _callers;
    private TaskScheduler _scheduler = TaskScheduler.Default;
    private int _next;
    private int _completed;
    private int _completedAtLastLook = -1;

    /// <summary>A release for at most <paramref name="capacity"/> callers (its list is sized once).</summary>
    public ProposalRelease(int capacity) => _callers = new(capacity);

    /// <summary>How many callers were added.</summary>
    public int Count => _callers.Count;

    /// <summary>Adds a caller whose success the applier claimed (<see cref="PendingProposal{TResult}.TryClaimSuccess"/>).</summary>
    public void Add(PendingProposal<TResult> pending, TResult result) => _callers.Add((pending, result));

    /// <summary>Whether every caller's task is completed.</summary>
    public bool IsDone => Volatile.Read(ref _completed) == _callers.Count;

    /// <summary>
    /// Callers per work item beyond the first: a release of fewer is one work item (its callers
    /// continue in log order on one thread); of more, up to one work item per core on the thread
    /// pool. Below this a second hand-off costs about what it saves (a continuation costs
    /// microseconds, a pool wake-up tens of them).
    /// </summary>
    internal const int CallersPerExtraWorkItem = 64;

    /// <summary>
    /// Queues the release on <paramref name="scheduler"/>, and records it in <paramref name="running"/>
    /// for the loop's stall check. On the thread pool a large release gets up to one work item per
    /// core (<see cref="CallersPerExtraWorkItem"/>), all taking callers from one cursor: each caller
    /// is still completed once, taken in log order, but continuations of one batch may then run on
    /// two threads at once. Any other scheduler (a deterministic one) gets one work item, as before.
    /// </summary>
    public void Queue(TaskScheduler scheduler, ConcurrentQueue<ProposalRelease<TResult>> running)
    {
        _scheduler = scheduler;
        running.Enqueue(this);
        var workItems = scheduler == TaskScheduler.Default
            ? Math.Clamp(_callers.Count / CallersPerExtraWorkItem, 1, Environment.ProcessorCount)
            : 1;
        for (var i = 0; i < workItems; i++)
        {
            QueueWorkItem();
        }
    }

    /// <summary>
    /// Loop only, once per tick: false once done (drop it); otherwise true, and when it completed no
    /// caller since the last look (a continuation blocks), a second work item carries on after it.
    /// </summary>
    public bool HelpIfStalled()
    {
        int completed = Volatile.Read(ref _completed);
        if (completed == _callers.Count)
        {
            return false;
        }

        if (completed == _completedAtLastLook && Volatile.Read(ref _next) < _callers.Count)
        {
            QueueWorkItem();
        }

        _completedAtLastLook = completed;
        return true;
    }

    /// <summary>Completes the callers not yet taken, one after another; more than one work item may run it (see remarks).</summary>
    public void Execute()
    {
        int i;
        while ((i = Interlocked.Increment(ref _next) - 1) < _callers.Count)
        {
            var (pending, result) = _callers[i];
            pending.SetClaimedResult(result);
            Interlocked.Increment(ref _completed);
        }
    }

    private void QueueWorkItem() => SchedulerWork.Queue(this, _scheduler);
}
