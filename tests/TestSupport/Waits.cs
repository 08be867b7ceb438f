using System.Diagnostics;
using NUnit.Framework;

namespace EmbeddedRaft.TestSupport;

/// <summary>
/// Bounded waits for tests. A test that waits on an event or a task the code under test should set
/// must fail with a message naming what never happened, not hang the run: every wait here gives up
/// after <see cref="Limit"/> (far beyond what a loaded 2-core machine needs; it bounds a hang, it
/// times nothing).
/// </summary>
public static class Waits
{
    /// <summary>How long a test waits for something that should happen promptly.</summary>
    public static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);

    /// <summary>How often <see cref="UntilAsync"/> looks at its condition again.</summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(10);

    /// <summary>Waits for <paramref name="signal"/>; fails the test naming <paramref name="what"/> when it never comes.</summary>
    public static void WaitOrFail(this ManualResetEventSlim signal, string what)
    {
        ArgumentNullException.ThrowIfNull(signal);
        if (!signal.Wait(Limit))
        {
            Assert.Fail($"Waited {Limit.TotalSeconds:0} s for {what}; it never happened (a hang).");
        }
    }

    /// <summary>Waits for <paramref name="task"/>; fails the test naming <paramref name="what"/> when it never completes.</summary>
    public static void WaitOrFail(this Task task, string what)
    {
        ArgumentNullException.ThrowIfNull(task);
        if (!task.Wait(Limit))
        {
            Assert.Fail($"Waited {Limit.TotalSeconds:0} s for {what}; it never completed (a hang).");
        }
    }

    /// <summary>Waits for <paramref name="task"/> and returns its result; fails the test naming <paramref name="what"/> when it never completes.</summary>
    public static T ResultOrFail<T>(this Task<T> task, string what)
    {
        WaitOrFail((Task)task, what);
        return task.Result;
    }

    /// <summary>
    /// Awaits <paramref name="task"/> for at most <paramref name="timeout"/> (default
    /// <see cref="Limit"/>); when it has not completed by then, fails the test naming <paramref name="what"/>, followed by <paramref name="state"/>'s
    /// description of the system at that moment (asked only then, so a wait that ends costs nothing
    /// more). A task that fails, even with its own <see cref="TimeoutException"/>, fails the wait
    /// with that exception as it is.
    /// </summary>
    public static async Task OrFailAsync(this Task task, string what, Func<string>? state = null, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(task);
        ArgumentNullException.ThrowIfNull(what);
        var limit = timeout ?? Limit;
        try
        {
            await task.WaitAsync(limit);
        }
        catch (TimeoutException) when (!task.IsCompleted)
        {
            FailHung(what, state, limit);
        }
    }

    /// <summary>As <see cref="OrFailAsync(Task, string, Func{string}?, TimeSpan?)"/>, returning the task's result.</summary>
    public static async Task<T> OrFailAsync<T>(this Task<T> task, string what, Func<string>? state = null, TimeSpan? timeout = null)
    {
        await OrFailAsync((Task)task, what, state, timeout);
        return await task;
    }

    /// <summary>
    /// Waits until <paramref name="condition"/> holds, looking at it again every
    /// <see cref="PollInterval"/>; fails the test naming <paramref name="what"/> when it still does
    /// not hold after <paramref name="timeout"/> (default <see cref="Limit"/>).
    /// </summary>
    /// <remarks>
    /// For state that changes with no event to wait on: a metrics counter, a status a node refreshes
    /// on its tick, a connection count. The poll interval decides nothing: a condition that holds is
    /// seen at the next look, one that never holds fails at the limit. Where the code under test
    /// signals the change (a log entry, a task, a stream of changes), wait on that instead.
    /// <paramref name="condition"/> runs on the caller's context, first at once.
    /// </remarks>
    public static async Task UntilAsync(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(condition);
        ArgumentNullException.ThrowIfNull(what);
        var limit = timeout ?? Limit;
        var waited = Stopwatch.StartNew();
        while (!condition())
        {
            if (waited.Elapsed > limit)
            {
                Assert.Fail($"Waited {limit.TotalSeconds:0.#} s for {what}; it never held.");
            }

            await Task.Delay(PollInterval);
        }
    }

    private static void FailHung(string what, Func<string>? state, TimeSpan limit)
    {
        string description;
        try
        {
            description = state?.Invoke() ?? string.Empty;
        }
        catch (Exception e)
        {
            // The description is a help, never the failure: a broken one is named, not thrown.
            description = $"(describing the state failed: {e.GetType().Name}: {e.Message})";
        }

        string message = $"Waited {limit.TotalSeconds:0.#} s for {what}; it never completed (a hang).";
        Assert.Fail(description.Length == 0 ? message : $"{message}{Environment.NewLine}State then:{Environment.NewLine}{description}");
    }
}
