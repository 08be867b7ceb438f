namespace EmbeddedRaft.Mvcc.Leases;

/// <summary>
/// A lease revocation queued for the writer. <see cref="OnlyIfExpired"/> marks one the store's own
/// expiry check queued: by the time the writer takes it the lease may have been revoked or (after
/// <see cref="MvccStore.RefreshLeases"/>) renewed, and then it does nothing instead of failing.
/// <see cref="IfExists"/> marks a replicated leader's expiry revocation applied from the log: it
/// revokes the lease whatever this member's clock says (the leader decided; every member must do
/// the same) and does nothing when an earlier entry already revoked it, or when a keep-alive
/// applied after the leader found it expired renewed it (its log index is above
/// <see cref="RenewedAtIndexOrBelow"/>, the lease's last keep-alive index the leader saw; null: no such condition).
/// </summary>
internal sealed record LeaseRevokeOp(long Id, bool OnlyIfExpired, bool IfExists = false, long? RenewedAtIndexOrBelow = null);
