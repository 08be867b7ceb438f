namespace EmbeddedRaft.Mvcc;

/// <summary>The answer to <see cref="MvccStore.LeaseLeases"/>, as etcd's <c>LeaseLeasesResponse</c>.</summary>
public sealed class LeaseLeasesResponse
{
    /// <summary>The header; its revision is the store's current revision.</summary>
    public required ResponseHeader Header { get; init; }

    /// <summary>The ids of every lease not yet revoked (expired ones included until they are), the soonest to expire first (ties by id), as etcd sorts them.</summary>
    public required IReadOnlyList<long> Leases { get; init; }
}
