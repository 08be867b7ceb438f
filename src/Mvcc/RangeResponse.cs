namespace EmbeddedRaft.Mvcc;

/// <summary>The answer to a <see cref="RangeRequest"/>, as etcd's <c>RangeResponse</c>.</summary>
public sealed class RangeResponse
{
    /// <summary>The header; its revision is the store's current revision.</summary>
    public required ResponseHeader Header { get; init; }

    /// <summary>The key-values found, after filters, sorting and the limit (empty for count-only).</summary>
    public required IReadOnlyList<KeyValue> Kvs { get; init; }

    /// <summary>True when the limit cut off further keys.</summary>
    public bool More { get; init; }

    /// <summary>How many keys the range holds at the revision read, before the limit and the mod/create revision filters (as etcd).</summary>
    public long Count { get; init; }
}
