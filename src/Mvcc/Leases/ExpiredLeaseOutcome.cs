namespace EmbeddedRaft.Mvcc.Leases;

/// <summary>What became of an expired lease a keep-alive waited for (<see cref="Lessor.KeepAlive"/>).</summary>
internal enum ExpiredLeaseOutcome
{
    /// <summary>It was revoked: the keep-alive answers not found.</summary>
    Revoked,

    /// <summary>Its TTL restarted meanwhile (a renewal from the log, a promotion or restore refreshing every lease): the keep-alive asks again.</summary>
    Renewed,

    /// <summary>The lessor was demoted (etcd's ErrNotPrimary): the revocation may never come from this member.</summary>
    NotPrimary,

    /// <summary>The store is closing.</summary>
    Closed,
}
