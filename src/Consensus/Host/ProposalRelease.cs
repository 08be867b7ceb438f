namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// The callers of one applied batch's proposals, released together: one work item on the node's
/// scheduler completes each task in log order, so their continuations run one after another on that
/// thread instead of one thread-pool hand-off per caller (each of which queued ahead of the node's
/// loops at high concurrency: docs/benchmarks.md, "RaftNode cluster, session 12"). Filled by the
/// applier only, and queued once (<see cref="Queue"/>).
/// </summary>
internal sealed class ProposalRelease<TResult> : IThreadPoolWorkItem
{
    private readonly List<(PendingProposal<TResult> Pending, TResult Result)> _callers = [];

    /// <summary>Adds a caller whose success the applier claimed (<see cref="PendingProposal{TResult}.TryClaimSuccess"/>).</summary>
    public void Add(PendingProposal<TResult> pending, TResult result) => _callers.Add((pending, result));

    public void Queue(TaskScheduler scheduler)
    {
        if (scheduler == TaskScheduler.Default)
        {
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        }
        else
        {
            _ = Task.Factory.StartNew(static r => ((ProposalRelease<TResult>)r!).Execute(), this, CancellationToken.None, TaskCreationOptions.DenyChildAttach, scheduler);
        }
    }

    /// <summary>Completes every caller's task; a continuation that blocks holds up the callers after it.</summary>
    public void Execute()
    {
        foreach (var (pending, result) in _callers)
        {
            pending.SetClaimedResult(result);
        }
    }
}
