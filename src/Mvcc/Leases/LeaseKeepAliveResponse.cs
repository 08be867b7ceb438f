namespace EmbeddedRaft.Mvcc;

/// <summary>The answer to <see cref="MvccStore.LeaseKeepAliveAsync"/>, as etcd's <c>LeaseKeepAliveResponse</c>.</summary>
public sealed class LeaseKeepAliveResponse
{
    /// <summary>The header; its revision is the store's current revision.</summary>
    public required ResponseHeader Header { get; init; }

    /// <summary>The lease kept alive.</summary>
    public long Id { get; init; }

    /// <summary>The lease's new remaining TTL, in seconds: its granted TTL.</summary>
    public long TtlSeconds { get; init; }
}
