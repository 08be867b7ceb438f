namespace EmbeddedRaft.Mvcc;

/// <summary>
/// One operation of a <see cref="TxnRequest"/> branch, as etcd's <c>RequestOp</c>: exactly one of
/// its four properties is set. Build it with <see cref="Range"/>, <see cref="Put"/>,
/// <see cref="DeleteRange"/> or <see cref="Txn"/>.
/// </summary>
public sealed class RequestOp
{
    private RequestOp()
    {
    }

    /// <summary>The range, when this operation is one.</summary>
    public RangeRequest? RequestRange { get; private init; }

    /// <summary>The put, when this operation is one.</summary>
    public PutRequest? RequestPut { get; private init; }

    /// <summary>The delete, when this operation is one.</summary>
    public DeleteRangeRequest? RequestDeleteRange { get; private init; }

    /// <summary>The nested transaction, when this operation is one.</summary>
    public TxnRequest? RequestTxn { get; private init; }

    /// <summary>An operation that reads a range.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="request"/> is null.</exception>
    public static RequestOp Range(RangeRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return new RequestOp { RequestRange = request };
    }

    /// <summary>An operation that writes a key.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="request"/> is null.</exception>
    public static RequestOp Put(PutRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return new RequestOp { RequestPut = request };
    }

    /// <summary>An operation that deletes a key or range.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="request"/> is null.</exception>
    public static RequestOp DeleteRange(DeleteRangeRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return new RequestOp { RequestDeleteRange = request };
    }

    /// <summary>An operation that runs a nested transaction (its writes share the outer one's revision).</summary>
    /// <exception cref="ArgumentNullException"><paramref name="request"/> is null.</exception>
    public static RequestOp Txn(TxnRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return new RequestOp { RequestTxn = request };
    }
}
