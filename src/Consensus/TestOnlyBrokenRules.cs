namespace EmbeddedRaft.Consensus;

/// <summary>
/// Switches that break one Raft rule each, for the whole-cluster simulator's proof that its
/// checkers can fail (tests/Simulation.Tests/Simulator/BrokenRuleTests.cs). Never set outside those
/// tests: every one of them loses acknowledged data or breaks linearizability.
/// </summary>
/// <remarks>
/// Plain static fields read once where the rule is enforced (a static load, no lock): a test sets one,
/// runs seeds until the simulator reports a violation, and clears it. Process-wide, so the tests
/// that set them run alone (NonParallelizable).
/// </remarks>
internal static class TestOnlyBrokenRules
{
    /// <summary>
    /// Raft Figure 2 broken: a node sends its append acknowledgements and votes to other nodes as soon
    /// as the Ready is written, before its fsync; a crash then loses entries a quorum was counted on,
    /// or a vote it already cast.
    /// </summary>
    internal static bool AcknowledgeBeforeFsync;

    /// <summary>
    /// Raft §5.4.1 broken: a vote (and a pre-vote) is granted without checking that the candidate's
    /// log is at least as up to date as the voter's; a leader may then lack committed entries.
    /// </summary>
    internal static bool GrantVoteWithoutLogCheck;
}
