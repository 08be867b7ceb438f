namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// One <see cref="RaftNode{TResult}.ProposeAsync"/> call in flight: its envelope, its task, and
/// where it is. States: queued (in the loop's inbox: a cancellation withdraws it), proposed
/// (handed to the Raft core: a cancellation only stops the wait), done. Completion is first-wins
/// (<c>TrySet*</c>), so the applier, the loop and a cancellation may race safely. It is its own
/// completion source (one object per call instead of two).
/// </summary>
internal sealed class PendingProposal<TResult> : TaskCompletionSource<TResult>
{
    private const int Queued = 0;
    private const int Proposed = 1;
    private const int Withdrawn = 2;

    private int _state;

    public PendingProposal(ulong requestId, byte[] envelope)
        : base(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        RequestId = requestId;
        Envelope = envelope;
    }

    public ulong RequestId { get; }

    public byte[] Envelope { get; }

    public CancellationTokenRegistration Registration { get; set; }

    /// <summary>Loop-owned: whether this node led when it proposed (then it was not forwarded, so it exists once at most).</summary>
    public bool ProposedAsLeader { get; set; }

    /// <summary>Loop-owned: the tick at which the call fails with <see cref="ProposalDropReason.TimedOut"/>; 0 for none.</summary>
    public long DeadlineTick { get; set; }

    public bool IsDone => Task.IsCompleted;

    /// <summary>Queued to proposed; false when the call was withdrawn first.</summary>
    public bool TryMarkProposed() => Interlocked.CompareExchange(ref _state, Proposed, Queued) == Queued;

    /// <summary>Queued to withdrawn (cancelled before it reached the core); false when already proposed.</summary>
    public bool TryWithdraw() => Interlocked.CompareExchange(ref _state, Withdrawn, Queued) == Queued;

    public void Complete(TResult result)
    {
        if (TrySetResult(result))
        {
            Registration.Dispose();
        }
    }

    public void Fail(Exception error)
    {
        if (TrySetException(error))
        {
            Registration.Dispose();
        }
    }

    public void Cancel(CancellationToken token)
    {
        if (TrySetCanceled(token))
        {
            Registration.Dispose();
        }
    }
}
