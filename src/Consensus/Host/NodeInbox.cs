using System.Threading.Tasks.Sources;
using EmbeddedRaft.Storage;

namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// The queue in front of one of a node's sequential consumers (the Raft loop, the apply pipeline):
/// any thread posts, one consumer takes everything posted so far in one go. Ticks are counted
/// rather than queued (at most <see cref="MaxPendingTicks"/>: a loop that falls behind drops ticks,
/// as etcd's tick channel does, rather than replaying a burst of timeouts).
/// </summary>
/// <remarks>
/// <para>The consumer waits on this object itself (an <see cref="IValueTaskSource{TResult}"/> reset
/// for every wait): a wait allocates nothing. Its continuation always runs asynchronously, on the
/// consumer's own scheduler when it has one (the await captures it: a single-threaded scheduler
/// keeps every step on its thread), else queued to the thread pool's global queue — behind what
/// is already queued there, not at the top of the poster's local queue. That is what batches: a
/// burst of posters (callers resumed one after another by an apply) runs before the consumer
/// they woke, instead of each post waking the consumer for one item (the local queue is
/// last-in-first-out for its own thread), and a poster never runs the consumer inline.</para>
/// <para>Invariant: <c>_waiting</c> is true only while the queue is empty, not closed, and the
/// consumer waits on the current version of <c>_signal</c>.</para>
/// </remarks>
internal sealed class NodeInbox<TInput> : IValueTaskSource<(List<TInput> Items, int Ticks, bool Closed)>
{
    public const int MaxPendingTicks = 128;

    private readonly Lock _lock = new();
    private List<TInput> _items = [];
    private List<TInput> _spare = [];
    private int _pendingTicks;
    private bool _closed;
    private bool _waiting;

    // Not readonly: a mutable struct, reset for every wait.
    private ManualResetValueTaskSourceCore<bool> _signal = new() { RunContinuationsAsynchronously = true };

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
        bool wake;
        lock (_lock)
        {
            if (_closed)
            {
                return false;
            }

            _items.Add(input);
            wake = _waiting;
            _waiting = false;
        }

        if (wake)
        {
            _signal.SetResult(true);
        }

        return true;
    }

    public void PostTick()
    {
        bool wake;
        lock (_lock)
        {
            if (_closed || _pendingTicks >= MaxPendingTicks)
            {
                return;
            }

            _pendingTicks++;
            wake = _waiting;
            _waiting = false;
        }

        if (wake)
        {
            _signal.SetResult(true);
        }
    }

    /// <summary>Stops accepting input and wakes the consumer, whose next take reports closed.</summary>
    public void Close()
    {
        bool wake;
        lock (_lock)
        {
            _closed = true;
            wake = _waiting;
            _waiting = false;
        }

        if (wake)
        {
            _signal.SetResult(true);
        }
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
    /// One consumer only, one take at a time (await each before the next).
    /// </summary>
    /// <exception cref="InvariantViolationException">A take is still waiting (a second consumer).</exception>
    public ValueTask<(List<TInput> Items, int Ticks, bool Closed)> TakeAsync()
    {
        lock (_lock)
        {
            if (HasSomethingUnsynchronized)
            {
                return new ValueTask<(List<TInput> Items, int Ticks, bool Closed)>(TakeUnsynchronized());
            }

            if (_waiting)
            {
                throw new InvariantViolationException("A node inbox has one consumer: a take was started while another one waits.");
            }

            _signal.Reset();
            _waiting = true;
            return new ValueTask<(List<TInput> Items, int Ticks, bool Closed)>(this, _signal.Version);
        }
    }

    (List<TInput> Items, int Ticks, bool Closed) IValueTaskSource<(List<TInput> Items, int Ticks, bool Closed)>.GetResult(short token)
    {
        _signal.GetResult(token);
        lock (_lock)
        {
            // Woken only by a post, a tick or the close, and nothing else takes: there is something.
            if (!HasSomethingUnsynchronized)
            {
                throw new InvariantViolationException("A node inbox's consumer was woken with nothing to take.");
            }

            return TakeUnsynchronized();
        }
    }

    ValueTaskSourceStatus IValueTaskSource<(List<TInput> Items, int Ticks, bool Closed)>.GetStatus(short token) => _signal.GetStatus(token);

    void IValueTaskSource<(List<TInput> Items, int Ticks, bool Closed)>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _signal.OnCompleted(continuation, state, token, flags);

    private bool HasSomethingUnsynchronized => _closed || _items.Count > 0 || _pendingTicks > 0;

    private (List<TInput> Items, int Ticks, bool Closed) TakeUnsynchronized()
    {
        _spare.Clear();
        (_items, _spare) = (_spare, _items);
        var ticks = _pendingTicks;
        _pendingTicks = 0;
        return (_spare, ticks, _closed);
    }
}
