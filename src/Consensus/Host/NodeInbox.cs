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
/// <para>The consumer waits on this inbox itself (an <see cref="IValueTaskSource{TResult}"/> reset
/// for each wait), whose continuation runs asynchronously on the consumer's own scheduler (the
/// await captures it), so a poster never runs the consumer inline and a single-threaded scheduler
/// keeps every step on its thread. A take or a wait allocates nothing: a node's three consumers
/// wake several times per applied batch, and a task, a completion source and an async state
/// machine per wake-up were ~0.2 KB each (docs/benchmarks.md, "Replicated puts, session 13").</para>
/// <para>Invariant: <c>_waiting</c> is true only while the queue is empty, not closed, and the
/// consumer waits; the poster that turns it false (under the lock) is the one that signals the
/// wait, exactly once. What the consumer then takes is taken when it reads the result, so it
/// includes whatever was posted after the signal.</para>
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

    // The one consumer's wait, reset for each one. Mutable struct! Don't make this readonly.
    private ManualResetValueTaskSourceCore<bool> _wait = new() { RunContinuationsAsynchronously = true };

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
            wake = TakeWaitingUnsynchronized();
        }

        Wake(wake);
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
            wake = TakeWaitingUnsynchronized();
        }

        Wake(wake);
    }

    /// <summary>Stops accepting input and wakes the consumer, whose next take reports closed.</summary>
    public void Close()
    {
        bool wake;
        lock (_lock)
        {
            _closed = true;
            wake = TakeWaitingUnsynchronized();
        }

        Wake(wake);
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
    /// One consumer only, and one take at a time: await each result once before the next call.
    /// </summary>
    /// <exception cref="InvalidOperationException">The previous take is still waiting.</exception>
    public ValueTask<(List<TInput> Items, int Ticks, bool Closed)> TakeAsync()
    {
        lock (_lock)
        {
            if (_waiting)
            {
                throw new InvalidOperationException("A NodeInbox has one consumer: its previous take is still waiting.");
            }

            if (HasInputUnsynchronized())
            {
                return new ValueTask<(List<TInput>, int, bool)>(TakeAllUnsynchronized());
            }

            _wait.Reset();
            _waiting = true;
            return new ValueTask<(List<TInput>, int, bool)>(this, _wait.Version);
        }
    }

    (List<TInput> Items, int Ticks, bool Closed) IValueTaskSource<(List<TInput> Items, int Ticks, bool Closed)>.GetResult(short token)
    {
        // Throws if the token is not the current wait's (the result was taken twice).
        _wait.GetResult(token);
        lock (_lock)
        {
            if (!HasInputUnsynchronized())
            {
                throw new InvariantViolationException("A NodeInbox woke its consumer with nothing queued, no tick and not closed.");
            }

            return TakeAllUnsynchronized();
        }
    }

    ValueTaskSourceStatus IValueTaskSource<(List<TInput> Items, int Ticks, bool Closed)>.GetStatus(short token) => _wait.GetStatus(token);

    void IValueTaskSource<(List<TInput> Items, int Ticks, bool Closed)>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _wait.OnCompleted(continuation, state, token, flags);

    private bool HasInputUnsynchronized() => _closed || _items.Count > 0 || _pendingTicks > 0;

    private (List<TInput> Items, int Ticks, bool Closed) TakeAllUnsynchronized()
    {
        _spare.Clear();
        (_items, _spare) = (_spare, _items);
        var ticks = _pendingTicks;
        _pendingTicks = 0;
        return (_spare, ticks, _closed);
    }

    // Under the lock: whether this post ends the consumer's wait (then the caller signals it, outside the lock).
    private bool TakeWaitingUnsynchronized()
    {
        var waiting = _waiting;
        _waiting = false;
        return waiting;
    }

    // Outside the lock: only the poster that ended the wait gets here with true, so the wait is signalled once.
    private void Wake(bool wake)
    {
        if (wake)
        {
            _wait.SetResult(true);
        }
    }
}
