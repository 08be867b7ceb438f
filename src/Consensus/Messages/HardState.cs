namespace EmbeddedRaft.Consensus.Messages;

/// <summary>
/// The state a node must persist before it sends messages that depend on it (Raft Figure 2,
/// "persistent state on all servers"; thesis §3.8: a vote must be durable before it is sent).
/// </summary>
/// <param name="Term">The latest term the node has seen.</param>
/// <param name="Vote">The candidate voted for in <paramref name="Term"/>, or 0.</param>
/// <param name="Commit">The highest index known to be committed (persisted so a restart need not wait to re-learn it).</param>
public readonly record struct HardState(ulong Term, ulong Vote, ulong Commit)
{
    /// <summary>True when every field is zero (a node that never started).</summary>
    public bool IsEmpty => Term == 0 && Vote == 0 && Commit == 0;
}
