namespace EmbeddedRaft.Mvcc;

/// <summary>The answer to <see cref="MvccStore.CompactAsync"/>, as etcd's <c>CompactionResponse</c>.</summary>
public sealed class CompactResponse
{
    /// <summary>The header: the store's current revision (a compaction creates no revision).</summary>
    public required ResponseHeader Header { get; init; }
}
