using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.TestSupport;

/// <summary>
/// An <see cref="ILogger"/> that keeps every entry it is given, so a test can assert that a
/// fallback or repair was reported (level, event, message). Thread-safe.
/// </summary>
public sealed class RecordingLogger : ILogger
{
    private readonly object _gate = new();
    private readonly List<RecordedLogEntry> _entries = [];

    /// <summary>Every entry so far, in the order logged.</summary>
    public IReadOnlyList<RecordedLogEntry> Entries
    {
        get
        {
            lock (_gate)
            {
                return _entries.ToList();
            }
        }
    }

    /// <inheritdoc />
    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    /// <inheritdoc />
    public bool IsEnabled(LogLevel logLevel) => true;

    /// <inheritdoc />
    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        ArgumentNullException.ThrowIfNull(formatter);
        lock (_gate)
        {
            _entries.Add(new RecordedLogEntry(logLevel, eventId, formatter(state, exception), exception));
        }
    }
}

/// <summary>One entry a <see cref="RecordingLogger"/> received, with the exception it was logged with, if any.</summary>
public sealed record RecordedLogEntry(LogLevel Level, EventId EventId, string Message, Exception? Exception = null);
