namespace EmbeddedRaft.Mvcc;

/// <summary>
/// Switches that break one rule of the replicated store each, for the whole-cluster simulator's
/// proof that its checkers can fail (tests/Simulation.Tests/Simulator/BrokenRuleTests.cs). Never set
/// outside those tests.
/// </summary>
/// <remarks>
/// Per member: a test sets them in <see cref="Replication.ReplicatedStoreOptions.BrokenRules"/> of
/// the members it builds, and every other member in the process keeps every rule.
/// </remarks>
internal sealed record TestOnlyBrokenRules
{
    /// <summary>Every rule kept (the only value outside the simulator's broken-rule tests).</summary>
    public static TestOnlyBrokenRules None { get; } = new();

    /// <summary>A linearizable range is served from the member's local state without a ReadIndex barrier (a stale follower or deposed leader answers).</summary>
    public bool LinearizableReadWithoutReadIndex { get; init; }

    /// <summary>
    /// A batch of linearizable single-key reads (<see cref="Replication.LinearizableReadBatch"/>) is
    /// read and answered as soon as it opens, not when the read-index group its readers wait for
    /// completes: a member behind the leader (or a deposed leader) answers from what it applied so
    /// far. The batch's own path, unlike <see cref="LinearizableReadWithoutReadIndex"/>, which
    /// reads each request alone.
    /// </summary>
    public bool ReadBatchBeforeItsReadIndex { get; init; }

    /// <summary>
    /// Every member's lessor is primary, not only the leader's: a follower proposes revocations of the
    /// leases that ran out on its own view, which misses keep-alives it has not applied yet, and
    /// nothing restarts the TTLs when a member starts to lead.
    /// </summary>
    public bool FollowersExpireLeases { get; init; }
}
