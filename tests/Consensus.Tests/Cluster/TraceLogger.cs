using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Consensus.Tests.Cluster;

/// <summary>Writes a node's log lines (elections, leader changes, snapshots, failures) into the cluster's trace.</summary>
internal sealed class TraceLogger(string prefix, Action<string> trace) : ILogger
{
    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        ArgumentNullException.ThrowIfNull(formatter);
        trace($"{prefix} log {logLevel} {formatter(state, exception)}" + (exception is null ? string.Empty : $" ({exception.GetType().Name}: {exception.Message})"));
    }
}
