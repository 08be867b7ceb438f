namespace EmbeddedRaft.Mvcc;

/// <summary>The answer to a <see cref="PutRequest"/>, as etcd's <c>PutResponse</c>.</summary>
public sealed class PutResponse
{
    /// <summary>The header; its revision is the one the put created.</summary>
    public required ResponseHeader Header { get; init; }

    /// <summary>With <see cref="PutRequest.PrevKv"/>, the key-value before the put (null when the key did not exist).</summary>
    public KeyValue? PrevKv { get; init; }
}
