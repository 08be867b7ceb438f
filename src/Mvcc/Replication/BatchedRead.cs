using System.Collections.Concurrent;
using System.Threading.Tasks.Sources;

namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>
/// One linearizable read waiting in a <see cref="LinearizableReadBatch"/>: the source of the task
/// <see cref="ReplicatedStore.RangeAsync"/> returned, pooled (reused once its result is taken: as
/// with any <see cref="ValueTask{TResult}"/>, await it once). Its continuation runs inline where the
/// batch answers it, as a reader's did where its read-index group completed.
/// </summary>
internal sealed class BatchedRead : IValueTaskSource<RangeResponse>
{
    private const int MaxPooled = 4096;
    private static readonly ConcurrentQueue<BatchedRead> Pool = new();
    private static int s_pooled;

    private ManualResetValueTaskSourceCore<RangeResponse> _core;

    /// <summary>The request; null while pooled.</summary>
    public RangeRequest? Request { get; private set; }

    /// <summary>The token of the task the current use hands out.</summary>
    public short Version => _core.Version;

    /// <summary>A read of <paramref name="request"/>, pooled or new.</summary>
    public static BatchedRead Rent(RangeRequest request)
    {
        if (!Pool.TryDequeue(out var read))
        {
            read = new BatchedRead();
        }
        else
        {
            Interlocked.Decrement(ref s_pooled);
        }

        read.Request = request;
        return read;
    }

    public void SetResult(RangeResponse response) => _core.SetResult(response);

    public void SetException(Exception error) => _core.SetException(error);

    public RangeResponse GetResult(short token)
    {
        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            Request = null;
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
    }

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
