namespace EmbeddedRaft.Mvcc.Leases;

/// <summary>
/// A lease revocation queued for the writer. <see cref="OnlyIfExpired"/> marks one the store's own
/// expiry check queued: by the time the writer takes it the lease may have been revoked or (after
/// <see cref="MvccStore.RefreshLeases"/>) renewed, and then it does nothing instead of failing.
/// </summary>
internal sealed record LeaseRevokeOp(long Id, bool OnlyIfExpired);
