using System.Collections.Concurrent;
using System.Threading.Tasks.Sources;

namespace EmbeddedRaft.Storage.Wal;

/// <summary>
/// The pooled completion behind a synced append's <see cref="ValueTask{TResult}"/> (and
/// <see cref="WriteAheadLog.SyncAsync"/>'s <see cref="ValueTask"/>): no allocation per append in
/// the steady state. Continuations run asynchronously, never on the writer thread.
/// </summary>
internal sealed class WalAppendWaiter : IValueTaskSource<WalPosition>, IValueTaskSource
{
    private readonly ConcurrentQueue<WalAppendWaiter> _pool;
    private ManualResetValueTaskSourceCore<WalPosition> _core; // Mutable struct! Don't make this readonly.

    public WalAppendWaiter(ConcurrentQueue<WalAppendWaiter> pool)
    {
        _pool = pool;
        _core.RunContinuationsAsynchronously = true;
    }

    public WalPosition Position { get; set; }

    public short Version => _core.Version;

    public void Complete() => _core.SetResult(Position);

    public void Fail(Exception exception) => _core.SetException(exception);

    public WalPosition GetResult(short token)
    {
        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            _core.Reset();
            _pool.Enqueue(this);
        }
    }

    void IValueTaskSource.GetResult(short token) => GetResult(token);

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
