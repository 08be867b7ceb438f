namespace EmbeddedRaft.Consensus;

/// <summary>
/// Switches that break one Raft rule each, for the whole-cluster simulator's proof that its
/// checkers can fail (tests/Simulation.Tests/Simulator/BrokenRuleTests.cs). Never set outside those
/// tests: every one of them loses acknowledged data or breaks linearizability.
/// </summary>
/// <remarks>
/// Per node: a test sets them in <see cref="RaftOptions.BrokenRules"/> of the nodes it builds, and
/// every other node in the process (another test's, running at the same time) keeps every rule. The
/// core and the host copy each switch into a field when they are built, so a rule costs a field
/// load where it is enforced.
/// </remarks>
internal sealed record TestOnlyBrokenRules
{
    /// <summary>Every rule kept (the only value outside the simulator's broken-rule tests).</summary>
    public static TestOnlyBrokenRules None { get; } = new();

    /// <summary>
    /// Raft Figure 2 broken: a node sends its append acknowledgements and votes to other nodes as soon
    /// as the Ready is written, before its fsync; a crash then loses entries a quorum was counted on,
    /// or a vote it already cast.
    /// </summary>
    public bool AcknowledgeBeforeFsync { get; init; }

    /// <summary>
    /// Raft §5.4.1 broken: a vote (and a pre-vote) is granted without checking that the candidate's
    /// log is at least as up to date as the voter's; a leader may then lack committed entries.
    /// </summary>
    public bool GrantVoteWithoutLogCheck { get; init; }

    /// <summary>
    /// The received-frame rule broken (RaftNode's <c>ReceivedFrameLedger</c>): a follower gives the frame
    /// copies it borrowed from a TCP transport back as soon as their messages are stepped, while its
    /// log still holds their entries; the next frame then overwrites entries it has yet to write and
    /// apply. For the test that proves poisoned frames make such a late reader fail.
    /// </summary>
    public bool ReturnReceivedFramesWhenStepped { get; init; }
}
