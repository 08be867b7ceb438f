namespace EmbeddedRaft.TestSupport.Simulation;

/// <summary>One broken rule: which rule, and a human-readable account (what, which watcher/key/revision, expected vs seen).</summary>
/// <param name="Rule">A short stable name of the rule ("watch.gap", "lease.visible-after-revoke").</param>
/// <param name="Detail">What was expected and what was seen.</param>
public sealed record CheckViolation(string Rule, string Detail)
{
    /// <inheritdoc/>
    public override string ToString() => $"[{Rule}] {Detail}";
}
