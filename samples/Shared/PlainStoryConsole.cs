namespace EmbeddedRaft.Samples;

/// <summary>
/// The story as plain lines, for redirected output and CI logs: every line is printed as it
/// happens and the progress line once a second.
/// </summary>
internal sealed class PlainStoryConsole : StoryConsole
{
    private static readonly TimeSpan s_progressInterval = TimeSpan.FromSeconds(1);
    private readonly Lock _lock = new();

    public override void Step(string text) => Write(string.Empty + Environment.NewLine + "== " + text);

    public override void Info(string text) => Write("   " + text);

    public override void Problem(string text) => Write("!! " + text);

    public override void WatchEvent(string text) => Write("   watch: " + text);

    public override async Task<T> RunAsync<T>(Func<string> progress, Func<Task<T>> story)
    {
        Task<T> running = story();
        using var timer = new PeriodicTimer(s_progressInterval);
        while (!running.IsCompleted)
        {
            // Wake at the next tick or when the story ends, whichever comes first.
            await Task.WhenAny(running, timer.WaitForNextTickAsync().AsTask()).ConfigureAwait(false);
            if (!running.IsCompleted)
            {
                Write("   .. " + progress());
            }
        }

        return await running.ConfigureAwait(false);
    }

    private void Write(string line)
    {
        lock (_lock)
        {
            Console.WriteLine(line);
        }
    }
}
