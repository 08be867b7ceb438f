using System.Collections.Concurrent;
using System.Threading.Tasks.Sources;
using EmbeddedRaft.Storage;

namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// One <see cref="RaftNode{TResult}.ProposeAsync"/> call in flight: its envelope, the source of the
/// <see cref="ValueTask{TResult}"/> the call returned, and where it is. States: queued (in the loop's
/// inbox: a cancellation withdraws it), proposed (handed to the Raft core: a cancellation only stops
/// the wait), done. The outcome is first-wins (an atomic claim), so the applier, the loop and a
/// cancellation may race safely. It is its own work item.
/// </summary>
/// <remarks>
/// <para>The outcome is decided where it happens — the first of <see cref="TryClaimSuccess"/>,
/// <see cref="Fail"/> and <see cref="Cancel"/> wins, atomically — but the caller is answered only on
/// the node's scheduler (the thread pool, or a deterministic scheduler), never on the loop, the
/// applier or a canceller's thread: a failure or cancellation queues this object as a work item;
/// the successes of one applied batch are answered together by one <see cref="ProposalRelease{TResult}"/>.
/// Continuations run inline where the answer is set (not asynchronously) on purpose, so the callers
/// released together continue one after another on that one thread (or, for a large batch on the
/// thread pool, on one thread per core), one hand-off per applied batch instead of one per caller
/// (as <see cref="ReadGroup"/> does for reads).</para>
/// <para><b>Pooling</b> (docs/benchmarks.md, "Replicated puts, session 19"): a call without a
/// cancellation token is reused once its caller took a successful result. Invariant: by then nothing
/// of the node's still acts on this use — the applier removed it from the <see cref="ProposalTable{TResult}"/>
/// before it claimed success, the loop proposed it (so its inbox item is gone), and every other
/// holder (the loop's tick scan, a refusal, an overwrite, the stop) finds a proposal by its request
/// id under the table's lock, which a later use never shares. Never pooled: a cancellable call (its
/// token's callback may still run against it), and a call that failed (rare; the collector takes it).
/// A result taken twice (a <see cref="ValueTask{TResult}"/> awaited twice) is refused by the
/// version check of <see cref="ManualResetValueTaskSourceCore{TResult}"/> and returns the object to
/// the pool at most once (<see cref="_returnableVersion"/>).</para>
/// </remarks>
internal sealed class PendingProposal<TResult> : IValueTaskSource<TResult>, IThreadPoolWorkItem
{
    private const int Queued = 0;
    private const int Proposed = 1;
    private const int Withdrawn = 2;

    // Per closed type, shared by the process's nodes; 1,024 calls in flight reuse ~1,024 objects.
    private const int MaxPooled = 4096;
    private static readonly ConcurrentQueue<PendingProposal<TResult>> Pool = new();
    private static int s_pooled;

    // Mutable struct! Don't make this readonly.
    private ManualResetValueTaskSourceCore<TResult> _core;
    private TaskScheduler _scheduler = TaskScheduler.Default;
    private int _state;
    private int _claimed;
    private Exception? _error;
    private CancellationToken _cancelledBy;

    // The core's version (read as unsigned: it wraps through the negative shorts) + 1, so 1..65,536,
    // while this use's successful result may return the object to the pool; 0 when it may not (a cancellable call, or already returned). One compare-exchange per take, so
    // two takes of one result (misuse) cannot both return it.
    private int _returnableVersion;

    private PendingProposal()
    {
    }

    public ulong RequestId { get; private set; }

    /// <summary>The proposal's envelope (<see cref="ProposalEnvelope"/>); a new array per call, never reused (the log holds it).</summary>
    public byte[] Envelope { get; private set; } = [];

    public CancellationTokenRegistration Registration { get; set; }

    /// <summary>Loop-owned: whether this node led when it proposed (then it was not forwarded, so it exists once at most).</summary>
    public bool ProposedAsLeader { get; set; }

    /// <summary>Loop-owned (or under the table's lock): the tick at which the call fails with <see cref="ProposalDropReason.TimedOut"/>; 0 for none.</summary>
    public long DeadlineTick { get; set; }

    /// <summary>The token of the <see cref="ValueTask{TResult}"/> this use hands out.</summary>
    public short Version => _core.Version;

    /// <summary>
    /// A call for <paramref name="requestId"/>, pooled or new. <paramref name="cancellable"/>: the
    /// caller's token can be cancelled, so this use is never returned to the pool (see remarks).
    /// </summary>
    public static PendingProposal<TResult> Rent(ulong requestId, byte[] envelope, TaskScheduler scheduler, bool cancellable)
    {
        PendingProposal<TResult>? pending = null;
        if (!cancellable && Pool.TryDequeue(out pending))
        {
            Interlocked.Decrement(ref s_pooled);
        }

        pending ??= new PendingProposal<TResult>();
        pending.RequestId = requestId;
        pending.Envelope = envelope;
        pending._scheduler = scheduler;
        pending._returnableVersion = cancellable ? 0 : (ushort)pending._core.Version + 1;
        return pending;
    }

    /// <summary>Queued to proposed; false when the call was withdrawn first.</summary>
    public bool TryMarkProposed() => Interlocked.CompareExchange(ref _state, Proposed, Queued) == Queued;

    /// <summary>Queued to withdrawn (cancelled before it reached the core); false when already proposed.</summary>
    public bool TryWithdraw() => Interlocked.CompareExchange(ref _state, Withdrawn, Queued) == Queued;

    /// <summary>
    /// Decides success (first wins); the caller then hands this to a <see cref="ProposalRelease{TResult}"/>,
    /// which answers the call. False when a failure or cancellation was decided first.
    /// </summary>
    public bool TryClaimSuccess() => Interlocked.Exchange(ref _claimed, 1) == 0;

    /// <summary>Answers the call with <paramref name="result"/>: only a release's work item, after <see cref="TryClaimSuccess"/>.</summary>
    public void SetClaimedResult(TResult result)
    {
        ThrowIfAnswered("result");

        // Before the answer: the caller's continuation runs inline in SetResult and may reuse this
        // object for its next call, whose registration this must not dispose.
        Registration.Dispose();
        _core.SetResult(result);
    }

    /// <summary>Decides failure with <paramref name="error"/> (first wins) and queues the answer on the node's scheduler.</summary>
    public void Fail(Exception error)
    {
        if (Interlocked.Exchange(ref _claimed, 1) == 0)
        {
            _error = error;
            QueueSelf();
        }
    }

    /// <summary>Decides cancellation by <paramref name="token"/> (first wins) and queues the answer on the node's scheduler.</summary>
    public void Cancel(CancellationToken token)
    {
        if (Interlocked.Exchange(ref _claimed, 1) == 0)
        {
            _cancelledBy = token;
            QueueSelf();
        }
    }

    /// <summary>Answers a failure or cancellation decided by <see cref="Fail"/> or <see cref="Cancel"/>, on the node's scheduler.</summary>
    public void Execute()
    {
        ThrowIfAnswered("failure");

        // A failed use is never pooled: nothing to return, and the caller may hold the exception.
        _returnableVersion = 0;
        Registration.Dispose();
        _core.SetException(_error ?? new OperationCanceledException(_cancelledBy));
    }

    public TResult GetResult(short token)
    {
        // Throws for a failure, or for a token of an earlier use (a result taken twice).
        var result = _core.GetResult(token);
        if (Interlocked.CompareExchange(ref _returnableVersion, 0, (ushort)token + 1) == (ushort)token + 1)
        {
            Return();
        }

        return result;
    }

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);

    private void Return()
    {
        // Only successful calls without a token come here: no registration, no error, no token.
        Envelope = [];
        RequestId = 0;
        Registration = default;
        ProposedAsLeader = false;
        DeadlineTick = 0;
        _state = Queued;
        _claimed = 0;
        _core.Reset();
        if (Interlocked.Increment(ref s_pooled) <= MaxPooled)
        {
            Pool.Enqueue(this);
        }
        else
        {
            Interlocked.Decrement(ref s_pooled);
        }
    }

    private void ThrowIfAnswered(string what)
    {
        if (_core.GetStatus(_core.Version) != ValueTaskSourceStatus.Pending)
        {
            throw new InvariantViolationException($"Proposal {RequestId}: its claimed {what} found the call already answered.");
        }
    }

    private void QueueSelf() => SchedulerWork.Queue(this, _scheduler);
}
