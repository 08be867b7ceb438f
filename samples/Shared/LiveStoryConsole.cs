using Spectre.Console;
using Spectre.Console.Rendering;

namespace EmbeddedRaft.Samples;

/// <summary>
/// The story as a Spectre.Console live view: the story so far, a panel with the latest watch
/// events, and a progress line at the bottom, redrawn five times a second. The last frame stays on
/// screen when the story ends.
/// </summary>
internal sealed class LiveStoryConsole : StoryConsole
{
    private const int WatchLinesShown = 5;
    private static readonly TimeSpan s_refreshInterval = TimeSpan.FromMilliseconds(200);

    private readonly Lock _lock = new();
    private readonly List<string> _lines = [];           // markup, already escaped
    private readonly Queue<string> _watchLines = new();  // markup, the newest last

    public override void Step(string text) => Add($"[bold yellow]{Markup.Escape(text)}[/]");

    public override void Info(string text) => Add($"  {Markup.Escape(text)}");

    public override void Problem(string text) => Add($"  [bold red]{Markup.Escape(text)}[/]");

    public override void WatchEvent(string text)
    {
        lock (_lock)
        {
            _watchLines.Enqueue(Markup.Escape(text));
            while (_watchLines.Count > WatchLinesShown)
            {
                _watchLines.Dequeue();
            }
        }
    }

    public override async Task<T> RunAsync<T>(Func<string> progress, Func<Task<T>> story)
    {
        T result = default!;
        await AnsiConsole.Live(Render(progress))
            .AutoClear(false)
            .Overflow(VerticalOverflow.Ellipsis)
            .Cropping(VerticalOverflowCropping.Top) // a long story scrolls: the newest lines stay visible
            .StartAsync(async context =>
            {
                Task<T> running = story();
                using var timer = new PeriodicTimer(s_refreshInterval);
                while (!running.IsCompleted)
                {
                    context.UpdateTarget(Render(progress));
                    await Task.WhenAny(running, timer.WaitForNextTickAsync().AsTask()).ConfigureAwait(false);
                }

                context.UpdateTarget(Render(progress));
                result = await running.ConfigureAwait(false);
            }).ConfigureAwait(false);
        return result;
    }

    private void Add(string markup)
    {
        lock (_lock)
        {
            _lines.Add(markup);
        }
    }

    private Rows Render(Func<string> progress)
    {
        lock (_lock)
        {
            var rows = new List<IRenderable>(_lines.Count + 2);
            rows.AddRange(_lines.Select(line => new Markup(line)));
            var watch = _watchLines.Count == 0 ? "[grey]no events yet[/]" : string.Join('\n', _watchLines);
            rows.Add(new Panel(new Markup(watch)) { Header = new PanelHeader("watcher (sampled; every event is counted)"), Expand = true });
            rows.Add(new Markup($"[green]{Markup.Escape(progress())}[/]"));
            return new Rows(rows);
        }
    }
}
