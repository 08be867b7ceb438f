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
}
