namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>
/// The apply result of a compaction: the store answers a compaction when its batch commits, so the
/// apply does not wait for it (it would hold every later entry back); the proposer does.
/// </summary>
/// <param name="Response">Completes when the compaction is recorded (or fails with the store's refusal).</param>
/// <param name="Physical">The caller asked to wait for the pruning too.</param>
internal sealed record PendingCompaction(Task<CompactResponse> Response, bool Physical);
