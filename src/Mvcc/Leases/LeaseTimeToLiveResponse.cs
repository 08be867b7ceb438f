namespace EmbeddedRaft.Mvcc;

/// <summary>The answer to <see cref="MvccStore.LeaseTimeToLive"/>, as etcd's <c>LeaseTimeToLiveResponse</c>.</summary>
public sealed class LeaseTimeToLiveResponse
{
    /// <summary>The header; its revision is the store's current revision.</summary>
    public required ResponseHeader Header { get; init; }

    /// <summary>The lease asked about.</summary>
    public long Id { get; init; }

    /// <summary>
    /// Whole seconds left before the lease expires (rounded down, as etcd), 0 once it has expired but
    /// is not yet revoked, and -1 when there is no such lease (etcd's answer for an unknown lease).
    /// </summary>
    public long TtlSeconds { get; init; }

    /// <summary>The TTL the lease was granted, in seconds; 0 when there is no such lease.</summary>
    public long GrantedTtlSeconds { get; init; }

    /// <summary>With <c>keys</c> asked for, the keys attached to the lease in key order; otherwise empty.</summary>
    public required IReadOnlyList<ReadOnlyMemory<byte>> Keys { get; init; }
}
