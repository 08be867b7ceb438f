namespace EmbeddedRaft.Mvcc;

/// <summary>The answer to one <see cref="RequestOp"/>, as etcd's <c>ResponseOp</c>: the property matching the request's kind is set.</summary>
public sealed class ResponseOp
{
    /// <summary>The range's answer, when the operation was a range.</summary>
    public RangeResponse? ResponseRange { get; init; }

    /// <summary>The put's answer, when the operation was a put.</summary>
    public PutResponse? ResponsePut { get; init; }

    /// <summary>The delete's answer, when the operation was a delete.</summary>
    public DeleteRangeResponse? ResponseDeleteRange { get; init; }

    /// <summary>The nested transaction's answer (its header revision is 0, as etcd's), when the operation was a transaction.</summary>
    public TxnResponse? ResponseTxn { get; init; }
}
