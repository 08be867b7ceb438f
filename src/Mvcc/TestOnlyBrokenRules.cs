namespace EmbeddedRaft.Mvcc;

/// <summary>
/// Switches that break one rule of the replicated store each, for the whole-cluster simulator's
/// proof that its checkers can fail (tests/Simulation.Tests/Simulator/BrokenRuleTests.cs). Never set
/// outside those tests.
/// </summary>
/// <remarks>
/// Plain static fields read where the rule is enforced: a test sets one, runs seeds until the
/// simulator reports a violation, and clears it. Process-wide, so the tests that set them run alone
/// (NonParallelizable).
/// </remarks>
internal static class TestOnlyBrokenRules
{
    /// <summary>A linearizable range is served from the member's local state without a ReadIndex barrier (a stale follower or deposed leader answers).</summary>
    internal static bool LinearizableReadWithoutReadIndex;

    /// <summary>
    /// Every member's lessor is primary, not only the leader's: a follower proposes revocations of the
    /// leases that ran out on its own view, which misses keep-alives it has not applied yet, and
    /// nothing restarts the TTLs when a member starts to lead.
    /// </summary>
    internal static bool FollowersExpireLeases;
}
