using EmbeddedRaft.Consensus;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Transport;

namespace EmbeddedRaft.TestSupport;

/// <summary>
/// Turns on, for a whole test process, the poisoning of received frames given back to their pool
/// (<see cref="ReceivedFramePool.PoisonReturnedFrames"/>): a holder that reads a RaftNode's received
/// entry after its frame was returned reads <c>0xDB</c> bytes and fails its test. For test
/// assemblies that cannot see the Consensus assembly's internals (a <c>[SetUpFixture]</c> calls it).
/// </summary>
public static class ReceivedFramePoisoning
{
    /// <summary>Poisons every frame returned from now on.</summary>
    public static void TurnOn() => ReceivedFramePool.PoisonReturnedFrames = true;

    /// <summary>Stops poisoning (the product's default).</summary>
    public static void TurnOff() => ReceivedFramePool.PoisonReturnedFrames = false;

    /// <summary>
    /// <paramref name="options"/> with the received-frame rule broken
    /// (<see cref="TestOnlyBrokenRules.ReturnReceivedFramesWhenStepped"/>): the node gives borrowed
    /// frames back as soon as their messages are stepped. Only for proving that a check catches it.
    /// </summary>
    public static RaftNodeOptions BreakingTheReturnRule(RaftNodeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options with { Raft = options.Raft with { BrokenRules = new TestOnlyBrokenRules { ReturnReceivedFramesWhenStepped = true } } };
    }
}
