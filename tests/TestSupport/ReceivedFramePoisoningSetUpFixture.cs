using NUnit.Framework;

namespace EmbeddedRaft.TestSupport;

/// <summary>
/// The body of a test assembly's <c>[SetUpFixture]</c> that poisons received frames for its whole run
/// (<see cref="ReceivedFramePoisoning"/>): each assembly derives one sealed class from this (NUnit takes
/// a set-up fixture per assembly or namespace, so the attribute stays there) and gets both halves.
/// </summary>
public abstract class ReceivedFramePoisoningSetUpFixture
{
    [OneTimeSetUp]
    public void TurnOn() => ReceivedFramePoisoning.TurnOn();

    [OneTimeTearDown]
    public void TurnOff() => ReceivedFramePoisoning.TurnOff();
}
