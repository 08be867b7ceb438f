using System.Collections.Concurrent;
using System.Threading.Tasks.Sources;

namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>
/// One linearizable read waiting in a <see cref="LinearizableReadBatch"/>: the source of the task
/// <see cref="ReplicatedStore.RangeAsync"/> returned. Its continuation runs inline where the batch
/// answers it, as a reader's did where its read-index group completed.
/// </summary>
/// <remarks>
/// <para>Answered exactly once: by the batch (<see cref="TryAnswer"/>) or, for a cancellable read,
/// by its token (<see cref="Cancel"/>), whichever comes first; the other finds it answered and
/// leaves it alone.</para>
/// <para>Pooling: a read without a token is reused once its result is taken (as with any
/// <see cref="ValueTask{TResult}"/>, await it once): by then the batch has answered it and holds it
/// no more. A cancellable read is never pooled: its caller may take the cancellation while the batch
/// still holds it, and a reused read answered by a stale batch would hand one caller another's
/// answer.</para>
/// <para>Where a returned read waits: first in its thread's one spare slot, else in the shared pool. A
/// reader typically takes its result in its continuation, which the batch's flush runs, and reads
/// again from there at once: the next <see cref="Rent"/> on that thread takes the read just returned,
/// still in its cache, with no atomic operation on the shared pool's head, tail or count (which the
/// two cores' flushes would otherwise pass back and forth twice per read).</para>
/// </remarks>
internal sealed class BatchedRead : IValueTaskSource<RangeResponse>
{
    private const int MaxPooled = 4096;
    private static readonly ConcurrentQueue<BatchedRead> Pool = new();
    private static int s_pooled;

    // This thread's spare read (reset, not in the pool), or null.
    [ThreadStatic]
    private static BatchedRead? t_spare;

    private ManualResetValueTaskSourceCore<RangeResponse> _core;
    private CancellationTokenRegistration _cancellation;
    // Default for a pooled read (only reads without a token are pooled).
    private CancellationToken _token;

    // 0 while waiting; 1 once answered (by the batch or the token).
    private int _answered;

    /// <summary>The request; null while pooled.</summary>
    public RangeRequest? Request { get; private set; }

    /// <summary>The token of the task the current use hands out.</summary>
    public short Version => _core.Version;

    /// <summary>A read of <paramref name="request"/>, pooled or new (new, never pooled, when <paramref name="cancellationToken"/> can be cancelled).</summary>
    public static BatchedRead Rent(RangeRequest request, CancellationToken cancellationToken)
    {
        BatchedRead? read = null;
        if (!cancellationToken.CanBeCanceled)
        {
            read = t_spare;
            if (read is not null)
            {
                t_spare = null;
            }
            else if (Pool.TryDequeue(out read))
            {
                Interlocked.Decrement(ref s_pooled);
            }
        }

        read ??= new BatchedRead();
        read.Request = request;
        read._answered = 0;
        read._token = cancellationToken;
        return read;
    }

    /// <summary>
    /// Answers the read with an <see cref="OperationCanceledException"/> when its token is cancelled
    /// before the batch answers it; call once, before the read joins its batch (so the registration
    /// is in place before any thread can answer it: <see cref="TryAnswer"/> removes it). A token
    /// already cancelled answers the read here, at once.
    /// </summary>
    public void WatchCancellation()
    {
        if (_token.CanBeCanceled)
        {
            _cancellation = _token.UnsafeRegister(static state => ((BatchedRead)state!).Cancel(), this);
        }
    }

    /// <summary>Answers with <paramref name="response"/> or <paramref name="error"/> unless the read was already answered (cancelled).</summary>
    public void TryAnswer(RangeResponse? response, Exception? error)
    {
        if (Interlocked.Exchange(ref _answered, 1) != 0)
        {
            return;
        }

        // The token's callback may still run; it will find the read answered. Not disposed here:
        // Dispose would wait for a callback running on another thread, inside the batch's flush.
        _cancellation.Unregister();
        if (error is not null)
        {
            _core.SetException(error);
        }
        else
        {
            _core.SetResult(response!);
        }
    }

    private void Cancel()
    {
        if (Interlocked.Exchange(ref _answered, 1) == 0)
        {
            _core.SetException(new OperationCanceledException(_token));
        }
    }

    public RangeResponse GetResult(short token)
    {
        var result = _core.GetResult(token);
        if (!_token.CanBeCanceled)
        {
            Return();
        }

        return result;
    }

    private void Return()
    {
        // Only reads without a token come here: no registration, no token to clear.
        Request = null;
        _core.Reset();
        if (t_spare is null)
        {
            t_spare = this;
            return;
        }

        if (Interlocked.Increment(ref s_pooled) <= MaxPooled)
        {
            Pool.Enqueue(this);
        }
        else
        {
            Interlocked.Decrement(ref s_pooled);
        }
    }

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
