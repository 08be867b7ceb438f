namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>
/// The system clock, except that its timers can be stopped: between <see cref="Stop"/> and the
/// disposal of what it returns, every timer callback is skipped (not deferred). A
/// <see cref="RaftNode{TResult}"/>'s only timer on its <see cref="Consensus.Host.RaftNodeOptions.TimeProvider"/>
/// is its tick, and every timeout it has counts ticks, so stopping this clock stops Raft's time —
/// no heartbeats, no elections, no proposal or read timeouts — while messages, writes and fsyncs
/// go on. A test that counts messages then counts what its own steps caused, not what a loaded
/// machine's late heartbeats added.
/// </summary>
internal sealed class StoppableTicks : TimeProvider
{
    private int _stopped;
    private int _callbacksRunning;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        ArgumentNullException.ThrowIfNull(callback);
        return System.CreateTimer(s => Fire(callback, s), state, dueTime, period);
    }

    /// <summary>
    /// Stops every timer of this clock until the returned object is disposed. When this returns, no
    /// callback is running and none will run until then (a tick a callback already posted to a
    /// node's loop may still be stepped).
    /// </summary>
    public IDisposable Stop()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            throw new InvalidOperationException("The ticks are stopped already.");
        }

        // A callback that read "running" before the flag was set finishes first.
        SpinWait.SpinUntil(() => Volatile.Read(ref _callbacksRunning) == 0);
        return new Restart(this);
    }

    private void Fire(TimerCallback callback, object? state)
    {
        Interlocked.Increment(ref _callbacksRunning);
        try
        {
            if (Volatile.Read(ref _stopped) == 0)
            {
                callback(state);
            }
        }
        finally
        {
            Interlocked.Decrement(ref _callbacksRunning);
        }
    }

    private sealed class Restart(StoppableTicks ticks) : IDisposable
    {
        public void Dispose() => Volatile.Write(ref ticks._stopped, 0);
    }
}
