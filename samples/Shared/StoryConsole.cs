using Spectre.Console;

namespace EmbeddedRaft.Samples;

/// <summary>
/// Where the story tells what happens: headlines, details, a sampled stream of watch events and a
/// progress line refreshed while the story runs. <see cref="Create"/> picks the live Spectre.Console
/// view on an interactive terminal and plain lines otherwise (output redirected, CI, or <c>--plain</c>).
/// </summary>
/// <remarks>Thread-safe: writers, the watcher and the story report from different tasks.</remarks>
internal abstract class StoryConsole
{
    /// <summary>The live view when the terminal can show it, plain lines otherwise.</summary>
    public static StoryConsole Create(SampleMode mode)
    {
        bool interactive = AnsiConsole.Profile.Capabilities.Interactive && !Console.IsOutputRedirected;
        return interactive && !mode.PlainOutput ? new LiveStoryConsole() : new PlainStoryConsole();
    }

    /// <summary>A new step of the story ("3. The leader dies").</summary>
    public abstract void Step(string text);

    /// <summary>A detail of the current step.</summary>
    public abstract void Info(string text);

    /// <summary>Something went wrong (a failed check, an unexpected error); shown in red where colour is available.</summary>
    public abstract void Problem(string text);

    /// <summary>One watch event, already sampled by the caller.</summary>
    public abstract void WatchEvent(string text);

    /// <summary>
    /// Runs <paramref name="story"/> while showing <paramref name="progress"/> (called a few times a
    /// second) as the progress line; returns what the story returns.
    /// </summary>
    public abstract Task<T> RunAsync<T>(Func<string> progress, Func<Task<T>> story);
}
