using System.Threading.Tasks.Sources;

namespace EmbeddedRaft.Mvcc.Store;

/// <summary>What the writer thread is asked to do.</summary>
internal enum WriteOpKind
{
    Put,
    DeleteRange,
    Txn,
    Compact,
    ConsistentIndex,
    Sync,
    AwaitCompactions,
    Stop,

    // Leases (Leases/LeaseApplier.cs).
    LeaseGrant,
    LeaseRevoke,

    /// <summary>A keep-alive applied from the replicated log (<see cref="MvccStore"/>'s ApplyLeaseKeepAliveAsync).</summary>
    LeaseKeepAlive,

    // Snapshot images (Store/MvccStore.Images.cs).

    /// <summary>Commit the batch and begin a read transaction on it: the state as of the consistent index.</summary>
    Checkpoint,

    /// <summary>Swap the B+tree file for a restored one (<see cref="PreparedRestore"/>).</summary>
    Restore,

    // The replicated store (Replication/MvccStore.Replica.cs).
    ReplicaMeta,
    ConsistentIndexAtLeast,

    /// <summary>Consecutive plain puts of a committed Raft batch, applied as one request (<see cref="Replication.ReplicatedPutRun"/>).</summary>
    PutRun,
}

/// <summary>
/// One request queued for the writer thread, and the completion its caller awaits (the source of
/// the caller's <see cref="ValueTask{TResult}"/>, so a write costs no task object). The writer
/// completes it when it is durable (synced mode), applied (no-sync mode), refused, or failed.
/// </summary>
/// <remarks>
/// <para>Ops of puts, deletes and txns come from a <see cref="WriteOpPool"/> and go back to it when their
/// caller takes the result (<c>GetResult</c>, which a <see cref="ValueTask{TResult}"/> allows once):
/// with thousands of writes in flight until their batch commits, fresh ops would survive into the
/// older GC generations and be copied there. Rules that keep reuse safe: the writer does not touch
/// an op after completing it (its caller may already have taken the result and the op be reused);
/// every completion happens on the writer thread, at most once per use; the version of
/// the completion core changes at every reuse, so a stale or second await fails instead of reading
/// another write's result.</para>
/// <para>A pooled op is old (it lives as long as its pool) and its caller's request is young, so
/// holding the request would write a young reference into an old object at every put: a dirty card
/// (256 B of heap) that the next collection scans, and a request that survives that collection
/// because the op still names it (the writer drops it only once applied, and 10,000 puts may wait
/// in the queue). In the live watch row that was ~99% of the store's dirty cards at a collection
/// (docs/benchmarks.md, "Watches, session 30"). So a pooled put op holds its own request, made
/// with the op, and a put copies its caller's fields into it (<see cref="ReusePut"/>): the caller's
/// request dies young, and only the key's and value's memory is referenced (the caller's arrays,
/// as before; old ones write no card).</para>
/// </remarks>
internal sealed class WriteOp :
    IValueTaskSource<object?>,
    IValueTaskSource<PutResponse>,
    IValueTaskSource<long>,
    IValueTaskSource<DeleteRangeResponse>,
    IValueTaskSource<TxnResponse>,
    IValueTaskSource<CompactResponse>,
    IValueTaskSource<LeaseGrantResponse>,
    IValueTaskSource<LeaseRevokeResponse>
{
    private readonly WriteOpPool? _pool;

    /// <summary>
    /// Pooled ops only: the op's own put request, refilled from the caller's at each put
    /// (<see cref="ReusePut"/>) and emptied when the op lets go of it (<see cref="DropRequest"/>), so
    /// a put writes no reference to its caller's young request into this old object (see the remarks).
    /// </summary>
    private readonly PutRequest? _ownPut;

    private ManualResetValueTaskSourceCore<object?> _core;
    private bool _completed;

    /// <summary>For a put whose response is only its revision: that revision, the response being built when taken (see <see cref="AnswerPutWithRevision"/>).</summary>
    private long _putRevision;

    public WriteOp(WriteOpKind kind, object? request, ulong consistentIndex)
        : this(pool: null)
    {
        Kind = kind;
        Request = request;
        ConsistentIndex = consistentIndex;
    }

    internal WriteOp(WriteOpPool? pool)
    {
        _pool = pool;

        // Made with the op, so it is as old as the op: refilling it writes no young reference but the key's and value's.
        _ownPut = pool is null ? null : new PutRequest();

        // Never run the caller's continuation on the writer thread.
        _core.RunContinuationsAsynchronously = true;
    }

    public WriteOpKind Kind { get; private set; }

    /// <summary>The pool the op returns to once its result is taken; null for an op made for one use.</summary>
    public WriteOpPool? Pool => _pool;

    /// <summary>
    /// Deterministic mode (the writer runs on <see cref="MvccStoreOptions.Scheduler"/>): completion
    /// runs the continuation where the awaiter asked for it instead of on the thread pool — an
    /// awaiter that captured the scheduler is queued to it, one that captured nothing (a
    /// <c>AsTask()</c>) runs inline on the writer, which is the scheduler's thread. Set before the
    /// op is queued; pooled ops keep it, and every store of a pool is in the same mode.
    /// </summary>
    public void ContinueInline() => _core.RunContinuationsAsynchronously = false;

    /// <summary>The request; the writer drops it once applied (<see cref="DropRequest"/>), so it does not outlive its batch.</summary>
    public object? Request { get; set; }

    /// <summary>The Raft index that produced the write, 0 for none.</summary>
    public ulong ConsistentIndex { get; private set; }

    /// <summary>For <see cref="WriteOpKind.Compact"/>: the revision, and whether to wait for the physical compaction.</summary>
    public long CompactRevision { get; init; }

    public bool Physical { get; init; }

    /// <summary>The response, held until the batch that holds the write is committed.</summary>
    public object? Result { get; set; }

    /// <summary>The token of the current use, for the caller's <see cref="ValueTask{TResult}"/>.</summary>
    public short Token => _core.Version;

    /// <summary>Sets up a pooled op for its next use (the pool calls this on a clean op).</summary>
    internal void Reuse(WriteOpKind kind, object? request, ulong consistentIndex)
    {
        Kind = kind;
        Request = request;
        ConsistentIndex = consistentIndex;
    }

    /// <summary>
    /// Sets up a pooled op for its next use as a put: <paramref name="request"/>'s fields are copied
    /// into the op's own request (which <see cref="Request"/> then is), and the caller's request is
    /// not referenced. The caller's request is immutable (its properties are init-only), so the copy
    /// made when the put is queued is what the writer would have read from it later.
    /// </summary>
    /// <exception cref="InvariantViolationException">The op is not pooled (it has no request of its own).</exception>
    internal void ReusePut(PutRequest request, ulong consistentIndex)
    {
        var own = _ownPut ?? throw new InvariantViolationException("MVCC store: a put copied into a write op that is not pooled.");
        own.Overwrite(request.Key, request.Value, request.Lease, request.PrevKv, request.IgnoreValue, request.IgnoreLease);
        Reuse(WriteOpKind.Put, own, consistentIndex);
    }

    /// <summary>Lets go of the request (the writer, once it is applied; and every take of the result): the op's own put request keeps no slice of its caller's key or value.</summary>
    public void DropRequest()
    {
        Request = null;
        _ownPut?.Clear();
    }

    /// <summary>
    /// A put's response without a previous key-value is just its revision: keep that instead of the
    /// two response objects while the write waits for its batch's commit (so they are neither made
    /// on the writer thread nor carried into older GC generations), and build them when the caller
    /// takes the result.
    /// </summary>
    public void AnswerPutWithRevision(long revision)
    {
        if (revision <= 0)
        {
            throw new InvariantViolationException($"MVCC writer: a put answered with revision {revision}.");
        }

        _putRevision = revision;
        Result = null;
    }

    /// <summary>The caller's view of the completion.</summary>
    public ValueTask<T> AsValueTask<T>() => new((IValueTaskSource<T>)(object)this, _core.Version);

    public void Complete()
    {
        if (!_completed)
        {
            _completed = true;
            _core.SetResult(Result);
        }
    }

    public void Fail(Exception exception)
    {
        if (!_completed)
        {
            _completed = true;
            _core.SetException(exception);
        }
    }

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);

    object? IValueTaskSource<object?>.GetResult(short token) => TakeResult(token);

    PutResponse IValueTaskSource<PutResponse>.GetResult(short token)
    {
        long revision = _putRevision;
        return (PutResponse?)TakeResult(token) ?? new PutResponse { Header = new ResponseHeader { Revision = revision } };
    }

    /// <summary>A put answered by its revision alone (no previous key-value asked for): that revision, no response objects.</summary>
    long IValueTaskSource<long>.GetResult(short token)
    {
        long revision = _putRevision;
        object? result = TakeResult(token);
        if (result is not null || revision <= 0)
        {
            throw new InvariantViolationException($"MVCC writer: a put awaited for its revision was answered with {result?.GetType().Name ?? "no revision"}.");
        }

        return revision;
    }

    DeleteRangeResponse IValueTaskSource<DeleteRangeResponse>.GetResult(short token) => (DeleteRangeResponse)TakeResult(token)!;

    TxnResponse IValueTaskSource<TxnResponse>.GetResult(short token) => (TxnResponse)TakeResult(token)!;

    CompactResponse IValueTaskSource<CompactResponse>.GetResult(short token) => (CompactResponse)TakeResult(token)!;

    LeaseGrantResponse IValueTaskSource<LeaseGrantResponse>.GetResult(short token) => (LeaseGrantResponse)TakeResult(token)!;

    LeaseRevokeResponse IValueTaskSource<LeaseRevokeResponse>.GetResult(short token) => (LeaseRevokeResponse)TakeResult(token)!;

    /// <summary>The result (or exception) of the current use, once; then the op is cleaned and, if pooled, returned.</summary>
    private object? TakeResult(short token)
    {
        if (token != _core.Version || _core.GetStatus(token) == ValueTaskSourceStatus.Pending)
        {
            // A stale token or a result taken before completion: the core throws, and nothing is released.
            return _core.GetResult(token);
        }

        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            _core.Reset();
            _completed = false;
            DropRequest();
            Result = null;
            _putRevision = 0;
            _pool?.Return(this);
        }
    }
}
