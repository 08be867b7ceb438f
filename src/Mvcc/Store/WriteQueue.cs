namespace EmbeddedRaft.Mvcc.Store;

/// <summary>
/// The requests waiting for the store's writer: any thread adds (<see cref="TryAdd"/>: one
/// compare-and-swap, no lock), the writer alone takes (<see cref="TryTake"/>), in the order they
/// were added; <see cref="Close"/> ends adding for good.
/// </summary>
/// <remarks>
/// <para>Why no lock: with thousands of writes in flight every caller's write went through one
/// monitor the writer also took to swap the queue out (docs/benchmarks.md, "MVCC in-order puts,
/// session 15"). Ops are linked through <see cref="WriteOp.Next"/>, so adding allocates nothing.</para>
/// <para>How: added ops form a stack, newest first (<see cref="_added"/>). The writer takes the whole
/// stack in one exchange and reverses it into <see cref="_taken"/>, oldest first, which it alone
/// walks. Every op in the stack was added after every op already taken, and one thread's adds are
/// in its program order, so ops come out in the order they went in (for ops added concurrently by
/// different threads, the order of their compare-and-swaps).</para>
/// <para>Invariants: an op is in at most one of <see cref="_added"/> and <see cref="_taken"/>, at most
/// once; an op's <see cref="WriteOp.Next"/> is null once it is taken (the queue is done with it
/// before the writer handles it, so a completed op can be reused at once); once
/// <see cref="_added"/> holds <see cref="ClosedMark"/> it never changes again.</para>
/// </remarks>
internal sealed class WriteQueue
{
    /// <summary>In <see cref="_added"/> once the queue is closed: adds fail from then on.</summary>
    private static readonly WriteOp ClosedMark = new(WriteOpKind.Stop, null, 0);

    /// <summary>Ops added and not yet taken, newest first, or <see cref="ClosedMark"/>.</summary>
    private WriteOp? _added;

    /// <summary>Ops taken from <see cref="_added"/> and not yet handed out, oldest first (writer only).</summary>
    private WriteOp? _taken;

    /// <summary>Adds <paramref name="op"/> (any thread); false, and nothing added, once the queue is closed.</summary>
    /// <exception cref="InvariantViolationException"><paramref name="op"/> is linked into the queue already (caught for every op but the oldest waiting, whose link is null).</exception>
    public bool TryAdd(WriteOp op)
    {
        if (op.Next is not null)
        {
            throw new InvariantViolationException("MVCC writer: a write op queued while it is queued.");
        }

        var head = Volatile.Read(ref _added);
        while (true)
        {
            if (ReferenceEquals(head, ClosedMark))
            {
                return false;
            }

            op.Next = head;
            var seen = Interlocked.CompareExchange(ref _added, op, head);
            if (ReferenceEquals(seen, head))
            {
                return true;
            }

            head = seen;
        }
    }

    /// <summary>True when nothing is waiting to be taken (writer only; false once closed).</summary>
    public bool IsEmpty => _taken is null && Volatile.Read(ref _added) is null;

    /// <summary>The oldest op not yet taken, or null when none is waiting or the queue is closed (writer only).</summary>
    public WriteOp? TryTake()
    {
        var op = _taken ?? TakeAdded();
        if (op is null)
        {
            return null;
        }

        _taken = op.Next;
        op.Next = null;
        return op;
    }

    /// <summary>
    /// Closes the queue (writer only): every later <see cref="TryAdd"/> fails. Returns the ops added
    /// and not yet taken, oldest first, unlinked, for the writer to refuse.
    /// </summary>
    public List<WriteOp> Close()
    {
        var left = new List<WriteOp>();
        while (TryTake() is { } op)
        {
            left.Add(op);
        }

        var last = Interlocked.Exchange(ref _added, ClosedMark);
        if (ReferenceEquals(last, ClosedMark))
        {
            return left;
        }

        // Added between the last take and the close: the stack, reversed.
        int first = left.Count;
        for (var op = last; op is not null;)
        {
            var next = op.Next;
            op.Next = null;
            left.Add(op);
            op = next;
        }

        left.Reverse(first, left.Count - first);
        return left;
    }

    /// <summary>Takes every added op into <see cref="_taken"/> (which is empty); returns the oldest, or null when none (or closed).</summary>
    private WriteOp? TakeAdded()
    {
        var head = Volatile.Read(ref _added);
        if (head is null || ReferenceEquals(head, ClosedMark))
        {
            // Nothing added: no interlocked operation for the writer's every look at an empty queue.
            return null;
        }

        var newest = Interlocked.Exchange(ref _added, null);
        if (ReferenceEquals(newest, ClosedMark))
        {
            // Only the writer closes, and it does not take after closing.
            throw new InvariantViolationException("MVCC writer: a closed write queue was taken from.");
        }

        WriteOp? oldest = null;
        while (newest is not null)
        {
            var next = newest.Next;
            newest.Next = oldest;
            oldest = newest;
            newest = next;
        }

        _taken = oldest;
        return oldest;
    }
}
