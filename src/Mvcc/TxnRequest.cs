namespace EmbeddedRaft.Mvcc;

/// <summary>
/// An atomic transaction, as etcd's <c>TxnRequest</c>: when every <see cref="Compare"/> holds, the
/// <see cref="Success"/> operations run, otherwise the <see cref="Failure"/> ones, in order; all its
/// writes take one revision and later operations see earlier writes. Each list holds at most
/// <see cref="MvccStoreOptions.MaxTxnOps"/> entries, and no key may be written twice in one
/// branch (etcd's duplicate-key rule, across nested transactions too).
/// </summary>
public sealed class TxnRequest
{
    /// <summary>The conditions; all must hold for <see cref="Success"/> to run.</summary>
    public IReadOnlyList<Compare> Compare { get; init; } = [];

    /// <summary>Operations run when every compare holds.</summary>
    public IReadOnlyList<RequestOp> Success { get; init; } = [];

    /// <summary>Operations run otherwise.</summary>
    public IReadOnlyList<RequestOp> Failure { get; init; } = [];
}
