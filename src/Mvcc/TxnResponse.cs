namespace EmbeddedRaft.Mvcc;

/// <summary>The answer to a <see cref="TxnRequest"/>, as etcd's <c>TxnResponse</c>.</summary>
public sealed class TxnResponse
{
    /// <summary>The header: the revision the transaction created when it wrote something, else the current one (0 for a nested transaction, as etcd).</summary>
    public required ResponseHeader Header { get; init; }

    /// <summary>True when every compare held and the success branch ran.</summary>
    public bool Succeeded { get; init; }

    /// <summary>One answer per operation of the branch that ran, in order.</summary>
    public required IReadOnlyList<ResponseOp> Responses { get; init; }
}
