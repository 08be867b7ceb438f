namespace EmbeddedRaft.Mvcc;

/// <summary>The answer to <see cref="MvccStore.LeaseGrantAsync"/>, as etcd's <c>LeaseGrantResponse</c>.</summary>
public sealed class LeaseGrantResponse
{
    /// <summary>The header; its revision is the store's current revision (a grant creates none).</summary>
    public required ResponseHeader Header { get; init; }

    /// <summary>The lease's id: the one asked for, or the one the store chose.</summary>
    public long Id { get; init; }

    /// <summary>The TTL granted, in seconds: the one asked for, raised to <see cref="LeaseOptions.MinTtlSeconds"/> when below it.</summary>
    public long TtlSeconds { get; init; }
}
