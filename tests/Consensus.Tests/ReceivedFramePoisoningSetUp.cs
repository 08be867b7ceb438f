using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests;

/// <summary>
/// For the whole test run: a received frame's copy given back to its pool is poisoned at once
/// (<see cref="ReceivedFramePoisoning"/>), so a holder that still reads it after the return fails
/// every TCP test it runs in (the commands it applies are garbage, or not RaftNode proposals at
/// all), instead of reading a later frame's plausible bytes.
/// </summary>
[SetUpFixture]
public sealed class ReceivedFramePoisoningSetUp : ReceivedFramePoisoningSetUpFixture;
