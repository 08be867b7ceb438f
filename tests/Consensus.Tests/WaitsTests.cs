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
}
