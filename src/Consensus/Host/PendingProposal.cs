using EmbeddedRaft.Storage;

namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// One <see cref="RaftNode{TResult}.ProposeAsync"/> call in flight: its envelope, its task, and
/// where it is. States: queued (in the loop's inbox: a cancellation withdraws it), proposed
/// (handed to the Raft core: a cancellation only stops the wait), done. The outcome is first-wins
/// (an atomic claim), so the applier, the loop and a cancellation may race safely. It is its own
/// completion source (one object per call instead of two) and its own work item.
/// </summary>
/// <remarks>
/// <para>The outcome is decided where it happens — the first of <see cref="TryClaimSuccess"/>,
/// <see cref="Fail"/> and <see cref="Cancel"/> wins, atomically — but the task is completed only on
/// the node's scheduler (the thread pool, or a deterministic scheduler), never on the loop, the
/// applier or a canceller's thread: a failure or cancellation queues this object as a work item;
/// the successes of one applied batch are completed together by one <see cref="ProposalRelease{TResult}"/>.
/// The task is created without <see cref="TaskCreationOptions.RunContinuationsAsynchronously"/> on
/// purpose, so the callers released together continue one after another on that one thread, one
/// hand-off per applied batch instead of one per caller (as <see cref="ReadGroup"/> does for
/// reads).</para>
/// </remarks>
internal sealed class PendingProposal<TResult> : TaskCompletionSource<TResult>, IThreadPoolWorkItem
{
    private const int Queued = 0;
    private const int Proposed = 1;
    private const int Withdrawn = 2;

    private readonly TaskScheduler _scheduler;
    private int _state;
    private int _claimed;
    private Exception? _error;
    private CancellationToken _cancelledBy;

    public PendingProposal(ulong requestId, byte[] envelope, TaskScheduler scheduler)
        : base(TaskCreationOptions.None)
    {
        RequestId = requestId;
        Envelope = envelope;
        _scheduler = scheduler;
    }

    public ulong RequestId { get; }

    public byte[] Envelope { get; }

    public CancellationTokenRegistration Registration { get; set; }

    /// <summary>Loop-owned: whether this node led when it proposed (then it was not forwarded, so it exists once at most).</summary>
    public bool ProposedAsLeader { get; set; }

    /// <summary>Loop-owned: the tick at which the call fails with <see cref="ProposalDropReason.TimedOut"/>; 0 for none.</summary>
    public long DeadlineTick { get; set; }

    /// <summary>Whether the outcome is decided (the task may still be waiting for its release to run).</summary>
    public bool IsDone => Volatile.Read(ref _claimed) != 0;

    /// <summary>Queued to proposed; false when the call was withdrawn first.</summary>
    public bool TryMarkProposed() => Interlocked.CompareExchange(ref _state, Proposed, Queued) == Queued;

    /// <summary>Queued to withdrawn (cancelled before it reached the core); false when already proposed.</summary>
    public bool TryWithdraw() => Interlocked.CompareExchange(ref _state, Withdrawn, Queued) == Queued;

    /// <summary>
    /// Decides success (first wins); the caller then hands this to a <see cref="ProposalRelease{TResult}"/>,
    /// which completes the task. False when a failure or cancellation was decided first.
    /// </summary>
    public bool TryClaimSuccess() => Interlocked.Exchange(ref _claimed, 1) == 0;

    /// <summary>Completes the task with <paramref name="result"/>: only a release's work item, after <see cref="TryClaimSuccess"/>.</summary>
    public void SetClaimedResult(TResult result)
    {
        if (!TrySetResult(result))
        {
            throw new InvariantViolationException($"Proposal {RequestId}: its claimed result found the task already completed.");
        }

        Registration.Dispose();
    }

    /// <summary>Decides failure with <paramref name="error"/> (first wins) and queues the completion on the node's scheduler.</summary>
    public void Fail(Exception error)
    {
        if (Interlocked.Exchange(ref _claimed, 1) == 0)
        {
            _error = error;
            QueueSelf();
        }
    }

    /// <summary>Decides cancellation by <paramref name="token"/> (first wins) and queues the completion on the node's scheduler.</summary>
    public void Cancel(CancellationToken token)
    {
        if (Interlocked.Exchange(ref _claimed, 1) == 0)
        {
            _cancelledBy = token;
            QueueSelf();
        }
    }

    /// <summary>Completes a failure or cancellation decided by <see cref="Fail"/> or <see cref="Cancel"/>, on the node's scheduler.</summary>
    public void Execute()
    {
        bool completed = _error is not null ? TrySetException(_error) : TrySetCanceled(_cancelledBy);
        if (!completed)
        {
            throw new InvariantViolationException($"Proposal {RequestId}: its claimed failure found the task already completed.");
        }

        Registration.Dispose();
    }

    private void QueueSelf() => SchedulerWork.Queue(this, _scheduler);
}
