namespace EmbeddedRaft.Mvcc;

/// <summary>The answer to a <see cref="DeleteRangeRequest"/>, as etcd's <c>DeleteRangeResponse</c>.</summary>
public sealed class DeleteRangeResponse
{
    /// <summary>The header; its revision is the one the delete created, or the current one when nothing was deleted (a delete of nothing creates no revision).</summary>
    public required ResponseHeader Header { get; init; }

    /// <summary>How many keys were deleted.</summary>
    public long Deleted { get; init; }

    /// <summary>With <see cref="DeleteRangeRequest.PrevKv"/>, the deleted key-values in key order; otherwise empty.</summary>
    public required IReadOnlyList<KeyValue> PrevKvs { get; init; }
}
