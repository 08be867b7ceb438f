using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Samples;

/// <summary>
/// Shows the library's warnings and errors in the story (a lost connection, a refused proposal),
/// at most <see cref="MaxLinesShown"/> of them, and counts the rest. A real service would pass the
/// <see cref="ILoggerFactory"/> of its host instead (see the HostedService sample).
/// </summary>
internal sealed class StoryLoggerFactory(StoryConsole console) : ILoggerFactory
{
    private const int MaxLinesShown = 12;
    private int _warnings;

    /// <summary>Warnings and errors logged so far, shown or not.</summary>
    public int Warnings => Volatile.Read(ref _warnings);

    public ILogger CreateLogger(string categoryName) => new StoryLogger(this, categoryName);

    public void AddProvider(ILoggerProvider provider) => throw new NotSupportedException("The story's logger factory has no providers.");

    public void Dispose()
    {
    }

    private void Log(string category, LogLevel level, string message)
    {
        int count = Interlocked.Increment(ref _warnings);
        if (count <= MaxLinesShown)
        {
            string source = category[(category.LastIndexOf('.') + 1)..];
            console.Info($"log {level.ToString().ToLowerInvariant()} ({source}): {message}");
        }
        else if (count == MaxLinesShown + 1)
        {
            console.Info("log: further warnings are counted, not shown");
        }
    }

    private sealed class StoryLogger(StoryLoggerFactory factory, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                factory.Log(category, logLevel, formatter(state, exception));
            }
        }
    }
}
