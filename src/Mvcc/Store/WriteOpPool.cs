namespace EmbeddedRaft.Mvcc.Store;

/// <summary>
/// Reused <see cref="WriteOp"/>s for puts, deletes and txns (see <see cref="WriteOp"/> for why and
/// when an op comes back). Holds at most <c>capacity</c> idle ops in its shared stack, plus the one
/// op each thread returned last; more are left to the collector. Thread-safe.
/// </summary>
/// <remarks>
/// A caller that keeps writes in flight takes each result and submits its next write on the same
/// thread, so the op it just returned is the one it rents next: that op stays in a per-thread slot
/// (<see cref="t_returned"/>), and such a caller takes no lock for it (two per write otherwise).
/// The slot keeps at most one op per thread alive, of whichever pool that thread returned to last;
/// a later return on the thread moves it to its own pool's stack.
/// </remarks>
internal sealed class WriteOpPool(int capacity)
{
    /// <summary>The op this thread returned last (of any pool), not yet rented again; clean, as every idle op.</summary>
    [ThreadStatic]
    private static WriteOp? t_returned;

    private readonly Stack<WriteOp> _idle = new();

    public WriteOp Rent(WriteOpKind kind, object request, ulong consistentIndex)
    {
        var op = Take();
        op.Reuse(kind, request, consistentIndex);
        return op;
    }

    /// <summary>An op for a put, holding a copy of <paramref name="request"/>'s fields rather than the request itself (<see cref="WriteOp.ReusePut"/>).</summary>
    public WriteOp RentPut(PutRequest request, ulong consistentIndex)
    {
        var op = Take();
        op.ReusePut(request, consistentIndex);
        return op;
    }

    private WriteOp Take()
    {
        var op = t_returned;
        if (op is not null && op.Pool == this)
        {
            t_returned = null;
        }
        else
        {
            op = null;
            lock (_idle)
            {
                _idle.TryPop(out op);
            }

            op ??= new WriteOp(this);
        }

        return op;
    }

    public void Return(WriteOp op)
    {
        if (op.Pool != this)
        {
            throw new InvariantViolationException("MVCC store: a write op returned to a pool it does not come from.");
        }

        var previous = t_returned;
        t_returned = op;
        previous?.Pool!.ReturnShared(previous);
    }

    private void ReturnShared(WriteOp op)
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
