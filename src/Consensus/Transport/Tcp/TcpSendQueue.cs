using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Transport.Tcp;

/// <summary>
/// A peer's bounded outbound queue: many writers (<see cref="TryAdd"/>, one short lock each, never
/// blocking), one reader that takes everything queued at once (<see cref="TryTakeAll"/>: one lock
/// per batch, not per message, by swapping lists).
/// </summary>
/// <remarks>
/// Thread-safe for any number of writers and a single reader. Once <see cref="Complete"/> is called
/// nothing more is added; <see cref="Completion"/> finishes when the queue is completed and empty.
/// </remarks>
internal sealed class TcpSendQueue(int capacity)
{
    private readonly Lock _lock = new();
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private List<Message> _pending = [];
    private TaskCompletionSource<bool>? _waiter;
    private bool _completed;

    /// <summary>Completes when <see cref="Complete"/> was called and everything queued was taken or dropped.</summary>
    public Task Completion => _completion.Task;

    public bool IsCompleted
    {
        get { lock (_lock) { return _completed; } }
    }

    /// <summary>Queues <paramref name="message"/>; false when the queue holds its capacity or is completed.</summary>
    public bool TryAdd(Message message)
    {
        TaskCompletionSource<bool>? wake;
        lock (_lock)
        {
            if (_completed || _pending.Count >= capacity)
            {
                return false;
            }

            _pending.Add(message);
            wake = _waiter;
            _waiter = null;
        }

        // Outside the lock; the reader runs on the thread pool (asynchronous continuations), not here.
        wake?.TrySetResult(true);
        return true;
    }

    /// <summary>
    /// Takes every queued message in one step: <paramref name="into"/> must be empty and is swapped
    /// for the queue's list (the caller clears and hands it back next time). False when nothing was queued.
    /// </summary>
    public bool TryTakeAll(ref List<Message> into)
    {
        if (into.Count != 0)
        {
            throw new InvariantViolationException($"TryTakeAll was given a list still holding {into.Count} messages.");
        }

        bool finished;
        lock (_lock)
        {
            if (_pending.Count == 0)
            {
                return false;
            }

            (into, _pending) = (_pending, into);
            finished = _completed;
        }

        if (finished)
        {
            _completion.TrySetResult();
        }

        return true;
    }

    /// <summary>What <see cref="WaitToTakeAsync"/> found.</summary>
    public enum WaitOutcome
    {
        /// <summary>Messages are queued.</summary>
        Ready,

        /// <summary>The queue is completed and empty.</summary>
        Completed,

        /// <summary>Nothing arrived within the timeout.</summary>
        TimedOut,
    }

    /// <summary>Waits at most <paramref name="timeout"/> (by <paramref name="clock"/>) until a message is queued or the queue is completed and empty.</summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public async ValueTask<WaitOutcome> WaitToTakeAsync(TimeSpan timeout, TimeProvider clock, CancellationToken cancellationToken)
    {
        Task<bool> waiting;
        lock (_lock)
        {
            if (_pending.Count > 0)
            {
                return WaitOutcome.Ready;
            }

            if (_completed)
            {
                return WaitOutcome.Completed;
            }

            _waiter ??= new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            waiting = _waiter.Task;
        }

        try
        {
            return await waiting.WaitAsync(timeout, clock, cancellationToken).ConfigureAwait(false) ? WaitOutcome.Ready : WaitOutcome.Completed;
        }
        catch (TimeoutException)
        {
            return WaitOutcome.TimedOut;
        }
    }

    /// <summary>Refuses further messages and wakes the reader; what is queued can still be taken.</summary>
    public void Complete()
    {
        TaskCompletionSource<bool>? wake;
        bool empty;
        lock (_lock)
        {
            _completed = true;
            empty = _pending.Count == 0;
            wake = _waiter;
            _waiter = null;
        }

        wake?.TrySetResult(false);
        if (empty)
        {
            _completion.TrySetResult();
        }
    }

    /// <summary>Drops everything queued; returns how many messages that was.</summary>
    public int Clear()
    {
        int dropped;
        bool finished;
        lock (_lock)
        {
            dropped = _pending.Count;
            _pending.Clear();
            finished = _completed;
        }

        if (finished)
        {
            _completion.TrySetResult();
        }

        return dropped;
    }
}
