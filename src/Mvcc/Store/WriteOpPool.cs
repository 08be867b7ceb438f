namespace EmbeddedRaft.Mvcc.Store;

/// <summary>
/// Reused <see cref="WriteOp"/>s for puts, deletes and txns (see <see cref="WriteOp"/> for why and
/// when an op comes back). Holds at most <c>capacity</c> idle ops; more are left to the collector.
/// Thread-safe.
/// </summary>
internal sealed class WriteOpPool(int capacity)
{
    private readonly Stack<WriteOp> _idle = new();

    public WriteOp Rent(WriteOpKind kind, object request, ulong consistentIndex)
    {
        WriteOp? op = null;
        lock (_idle)
        {
            _idle.TryPop(out op);
        }

        op ??= new WriteOp(this);
        op.Reuse(kind, request, consistentIndex);
        return op;
    }

    public void Return(WriteOp op)
    {
        lock (_idle)
        {
            if (_idle.Count < capacity)
            {
                _idle.Push(op);
            }
        }
    }
}
