using EmbeddedRaft.TestSupport;
using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Consensus.Tests.Transport.Tcp;

/// <summary>
/// A logger a test can wait on: <see cref="NextAsync"/> completes when an entry with the given
/// event name is logged after the call, so a test waits for "the node refused it" as an event,
/// not by polling or sleeping. Thread-safe.
/// </summary>
public sealed class SignalingLogger : ILogger
{
    private readonly Lock _lock = new();
    private readonly List<RecordedLogEntry> _entries = [];
    private readonly List<(string EventName, string? MessageContains, TaskCompletionSource<RecordedLogEntry> Signal)> _waiters = [];

    public IReadOnlyList<RecordedLogEntry> Entries
    {
        get { lock (_lock) { return [.. _entries]; } }
    }

    public int Count(string eventName)
    {
        lock (_lock)
        {
            return _entries.Count(e => e.EventId.Name == eventName);
        }
    }

    /// <summary>
    /// The next entry named <paramref name="eventName"/> (and, if given, whose message contains
    /// <paramref name="messageContains"/>) logged from now on, bounded by <see cref="Waits.Limit"/>.
    /// </summary>
    /// <remarks>
    /// One event name can stand for several things (a keep-alive timeout "to" a peer on the sending
    /// side, "from" a peer on the receiving side of the same transport): a waiter that means one
    /// of them says which, or an unrelated connection's entry completes it.
    /// </remarks>
    public Task<RecordedLogEntry> NextAsync(string eventName, string? messageContains = null)
    {
        var signal = new TaskCompletionSource<RecordedLogEntry>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            _waiters.Add((eventName, messageContains, signal));
        }

        return signal.Task.WaitAsync(Waits.Limit);
    }

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        ArgumentNullException.ThrowIfNull(formatter);
        var entry = new RecordedLogEntry(logLevel, eventId, formatter(state, exception) + (exception is null ? "" : $" ({exception.GetType().Name}: {exception.Message})"));
        List<TaskCompletionSource<RecordedLogEntry>> woken = [];
        lock (_lock)
        {
            _entries.Add(entry);
            _waiters.RemoveAll(w =>
            {
                if (w.EventName != eventId.Name || (w.MessageContains is { } part && !entry.Message.Contains(part, StringComparison.Ordinal)))
                {
                    return false;
                }

                woken.Add(w.Signal);
                return true;
            });
        }

        foreach (var signal in woken)
        {
            signal.TrySetResult(entry);
        }
    }
}
