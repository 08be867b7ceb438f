namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// The queue in front of one of a node's sequential consumers (the Raft loop, the apply pipeline):
/// any thread posts, one consumer takes everything posted so far in one go. Ticks are counted
/// rather than queued (at most <see cref="MaxPendingTicks"/>: a loop that falls behind drops ticks,
/// as etcd's tick channel does, rather than replaying a burst of timeouts).
/// </summary>
/// <remarks>
/// The consumer waits on a <see cref="TaskCompletionSource"/> whose continuation runs
/// asynchronously on the consumer's own scheduler (the await captures it), so a poster never runs
/// the consumer inline and a single-threaded scheduler keeps every step on its thread.
/// Invariant: <c>_waiter</c> is non-null only while the queue is empty, not closed, and the consumer waits.
/// </remarks>
internal sealed class NodeInbox<TInput>
{
    public const int MaxPendingTicks = 128;

    private readonly Lock _lock = new();
    private List<TInput> _items = [];
    private List<TInput> _spare = [];
    private int _pendingTicks;
    private bool _closed;
    private TaskCompletionSource? _waiter;

    public bool IsClosed
    {
        get
        {
            lock (_lock)
            {
                return _closed;
            }
        }
    }

    /// <summary>Queues <paramref name="input"/>; false (and nothing queued) once closed.</summary>
    public bool TryPost(TInput input)
    {
        TaskCompletionSource? waiter;
        lock (_lock)
        {
            if (_closed)
            {
                return false;
            }

            _items.Add(input);
            waiter = _waiter;
            _waiter = null;
        }

        waiter?.TrySetResult();
        return true;
    }

    public void PostTick()
    {
        TaskCompletionSource? waiter;
        lock (_lock)
        {
            if (_closed || _pendingTicks >= MaxPendingTicks)
            {
                return;
            }

            _pendingTicks++;
            waiter = _waiter;
            _waiter = null;
        }

        waiter?.TrySetResult();
    }

    /// <summary>Stops accepting input and wakes the consumer, whose next take reports closed.</summary>
    public void Close()
    {
        TaskCompletionSource? waiter;
        lock (_lock)
        {
            _closed = true;
            waiter = _waiter;
            _waiter = null;
        }

        waiter?.TrySetResult();
    }

    /// <summary>
    /// Once closed: takes what was posted and never taken (the consumer stopped before its next
    /// take), so that the owner can fail the callers waiting on it. Empty before the close.
    /// </summary>
    public List<TInput> TakeLeftAfterClose()
    {
        lock (_lock)
        {
            if (!_closed || _items.Count == 0)
            {
                return [];
            }

            var left = _items;
            _items = [];
            return left;
        }
    }

    /// <summary>
    /// Waits until something is queued, then takes it all: the items (the list is the caller's until
    /// its next call), the ticks, and whether the inbox is closed (the consumer should then stop).
    /// One consumer only.
    /// </summary>
    public async Task<(List<TInput> Items, int Ticks, bool Closed)> TakeAsync()
    {
        while (true)
        {
            Task wait;
            lock (_lock)
            {
                if (_closed || _items.Count > 0 || _pendingTicks > 0)
                {
                    _spare.Clear();
                    (_items, _spare) = (_spare, _items);
                    var ticks = _pendingTicks;
                    _pendingTicks = 0;
                    return (_spare, ticks, _closed);
                }

                _waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                wait = _waiter.Task;
            }

            await wait;
        }
    }
}
