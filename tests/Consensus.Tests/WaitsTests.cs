using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests;

/// <summary>
/// The bounded poll every test project shares (<see cref="Waits.UntilAsync"/>): it returns at the
/// first look that finds its condition true, and a condition that never holds fails the test with
/// the description of what was awaited instead of hanging it.
/// </summary>
public sealed class WaitsTests
{
    [Test]
    public async Task UntilAsyncReturnsAtTheFirstLookThatFindsTheConditionTrue()
    {
        int looks = 0;

        await Waits.UntilAsync(() => ++looks == 3, "the third look");

        Assert.That(looks, Is.EqualTo(3), "it looked until the condition held, and not again");
    }

    [Test]
    public void UntilAsyncFailsTheTestNamingWhatNeverHeldOnceItsTimeoutPasses()
    {
        var failure = Assert.ThrowsAsync<AssertionException>(() => Waits.UntilAsync(() => false, "a condition that never holds", TimeSpan.FromMilliseconds(50)));

        Assert.That(failure!.Message, Does.Contain("a condition that never holds"));
    }

    [Test]
    public void OrFailAsyncFailsTheTestNamingWhatItWaitedForAndDescribingTheStateThen()
    {
        var never = new TaskCompletionSource();
        int described = 0;

        var failure = Assert.ThrowsAsync<AssertionException>(() => never.Task.OrFailAsync("a task nobody completes", () => $"described {++described} time(s)", TimeSpan.FromMilliseconds(50)));

        Assert.That(failure!.Message, Does.Contain("a task nobody completes").And.Contain("described 1 time(s)"), "the description is asked once, when the wait runs out");
    }

    [Test]
    public async Task OrFailAsyncReturnsTheResultWithoutDescribingAnything()
    {
        int value = await Task.FromResult(7).OrFailAsync("a completed task", () => throw new InvalidOperationException("a wait that ends must not describe the state"));

        Assert.That(value, Is.EqualTo(7));
    }

    [Test]
    public void OrFailAsyncPassesOnTheTasksOwnTimeoutExceptionAsItIs()
    {
        var own = new TimeoutException("the code under test gave up");

        var thrown = Assert.ThrowsAsync<TimeoutException>(() => Task.FromException(own).OrFailAsync("a task that failed by itself"));

        Assert.That(thrown, Is.SameAs(own), "a failure of the awaited task is not a hang of the wait");
    }
}
