using EmbeddedRaft.Consensus.Transport;

namespace EmbeddedRaft.Consensus.Tests;

/// <summary>
/// For the whole test run: a received frame's copy given back to its pool is poisoned at once
/// (<see cref="ReceivedFramePool.PoisonReturnedFrames"/>), so a holder that still reads it after the
/// return fails every TCP test it runs in (the commands it applies are garbage, or not RaftNode
/// proposals at all), instead of reading a later frame's plausible bytes.
/// </summary>
[SetUpFixture]
public sealed class ReceivedFramePoisoning
{
    [OneTimeSetUp]
    public void PoisonReturnedFrames() => ReceivedFramePool.PoisonReturnedFrames = true;

    [OneTimeTearDown]
    public void StopPoisoning() => ReceivedFramePool.PoisonReturnedFrames = false;
}
