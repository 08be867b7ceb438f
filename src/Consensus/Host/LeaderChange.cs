namespace EmbeddedRaft.Consensus.Host;

/// <summary>A leader as one node observed it (see <see cref="RaftNode{TResult}.LeaderChanges"/>).</summary>
/// <param name="LeaderId">The leader's id, or 0 when no leader is known (an election is running).</param>
/// <param name="Term">The node's term when it observed the change.</param>
/// <param name="IsLocal">True when the observing node is the leader itself.</param>
public sealed record LeaderChange(ulong LeaderId, ulong Term, bool IsLocal);
