namespace EmbeddedRaft.Mvcc;

/// <summary>Deletes one key or a range of keys, as etcd's <c>DeleteRangeRequest</c> (<see cref="RangeEnd"/> as in <see cref="RangeRequest"/>).</summary>
public sealed class DeleteRangeRequest
{
    /// <summary>The key, or the first key of the range. Must not be empty.</summary>
    public ReadOnlyMemory<byte> Key { get; init; }

    /// <summary>Empty for a single key; the byte 0 for every key &gt;= <see cref="Key"/>; otherwise the exclusive end.</summary>
    public ReadOnlyMemory<byte> RangeEnd { get; init; }

    /// <summary>Return the deleted key-values (<see cref="DeleteRangeResponse.PrevKvs"/>).</summary>
    public bool PrevKv { get; init; }
}
