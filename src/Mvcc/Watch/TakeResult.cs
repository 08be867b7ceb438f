namespace EmbeddedRaft.Mvcc.Watch;

/// <summary>What a watch's consumer does next, as <see cref="WatchHub.Take"/> decided under its lock.</summary>
internal readonly struct TakeResult
{
    private TakeResult(TakeKind kind, WatchBuffer? buffer, long revision, long target, Exception? reason, TaskCompletionSource<bool>? waiter, bool answersProgress = false)
    {
        AnswersProgress = answersProgress;
        Kind = kind;
        Buffer = buffer;
        Revision = revision;
        Target = target;
        Reason = reason;
        Waiter = waiter;
    }

    public TakeKind Kind { get; }

    /// <summary>For <see cref="TakeKind.Respond"/>: the taken live changes (now the consumer's), or null for a progress notification.</summary>
    public WatchBuffer? Buffer { get; }

    /// <summary>For <see cref="TakeKind.Respond"/>: the response's revision; for <see cref="TakeKind.CatchUp"/>: the first revision to read.</summary>
    public long Revision { get; }

    /// <summary>For <see cref="TakeKind.Respond"/>: a progress notification was asked for, so the response is due even when the buffer turns out to hold no event for the watcher.</summary>
    public bool AnswersProgress { get; }

    /// <summary>For <see cref="TakeKind.CatchUp"/>: the last revision to read (the notified one).</summary>
    public long Target { get; }

    /// <summary>For <see cref="TakeKind.End"/>: the exception the stream ends with, or null to end quietly.</summary>
    public Exception? Reason { get; }

    /// <summary>For <see cref="TakeKind.Wait"/>: completes when something changes.</summary>
    public TaskCompletionSource<bool>? Waiter { get; }

    public static TakeResult Respond(WatchBuffer? buffer, long revision, bool answersProgress) => new(TakeKind.Respond, buffer, revision, 0, null, null, answersProgress);

    public static TakeResult End(Exception? reason) => new(TakeKind.End, null, 0, 0, reason, null);

    public static TakeResult CatchUp(long next, long target) => new(TakeKind.CatchUp, null, next, target, null, null);

    public static TakeResult Wait(TaskCompletionSource<bool> waiter) => new(TakeKind.Wait, null, 0, 0, null, waiter);
}
