using System.Globalization;
using System.Text;

namespace EmbeddedRaft.TestSupport.Linearizability;

/// <summary>A key as etcd returns it: value, create and mod revisions, version, attached lease (0: none).</summary>
public sealed record EtcdKeyValue(string Key, string Value, long CreateRevision, long ModRevision, long Version, long Lease = 0)
{
    /// <inheritdoc/>
    public override string ToString() => Lease == 0
        ? string.Create(CultureInfo.InvariantCulture, $"{Key}={Value}@c{CreateRevision}/m{ModRevision}/v{Version}")
        : string.Create(CultureInfo.InvariantCulture, $"{Key}={Value}@c{CreateRevision}/m{ModRevision}/v{Version}/l{Lease}");
}

/// <summary>The errors an etcd request may answer that the model predicts (each means nothing was changed).</summary>
public enum EtcdKvError
{
    /// <summary>No error.</summary>
    None,

    /// <summary>A read or compaction at a compacted revision (etcd "mvcc: required revision has been compacted").</summary>
    Compacted,

    /// <summary>A read or compaction above the current revision (etcd "mvcc: required revision is a future revision").</summary>
    FutureRevision,

    /// <summary>A put with, a revoke or a keep-alive of a lease that does not exist (etcd "lease not found").</summary>
    LeaseNotFound,

    /// <summary>A grant of an id in use (etcd "lease already exists").</summary>
    LeaseExists,
}

/// <summary>
/// What one operation of a request returned: the keys a range read found (values empty when keys-only)
/// with <see cref="Count"/> (every key in range, whatever the limit) and <see cref="More"/>; the number of
/// keys a delete removed; the previous keys of a put or delete with prev_kv; the lease and TTL of a
/// grant or keep-alive. Equality compares everything, lists element by element.
/// </summary>
public sealed record EtcdKvOperationResult(IReadOnlyList<EtcdKeyValue> Kvs, long Deleted)
{
    /// <summary>A put's result (without prev_kv).</summary>
    public static EtcdKvOperationResult PutDone { get; } = new([], 0);

    /// <summary>Range: how many keys the range holds (by default the number of <see cref="Kvs"/>, right for a read without limit).</summary>
    public long Count { get; init; } = Kvs.Count;

    /// <summary>Range: whether the limit left keys out.</summary>
    public bool More { get; init; }

    /// <summary>Put and DeleteRange with prev_kv: the keys as they were before (empty otherwise).</summary>
    public IReadOnlyList<EtcdKeyValue> PrevKvs { get; init; } = [];

    /// <summary>LeaseGrant and LeaseKeepAlive: the lease id.</summary>
    public long Lease { get; init; }

    /// <summary>LeaseGrant and LeaseKeepAlive: the granted TTL in seconds.</summary>
    public long TtlSeconds { get; init; }

    /// <summary>A lease grant's or keep-alive's result.</summary>
    public static EtcdKvOperationResult LeaseAnswer(long lease, long ttlSeconds) => new([], 0) { Lease = lease, TtlSeconds = ttlSeconds };

    /// <inheritdoc/>
    public bool Equals(EtcdKvOperationResult? other) =>
        other is not null && Deleted == other.Deleted && Count == other.Count && More == other.More && Lease == other.Lease
        && TtlSeconds == other.TtlSeconds && Kvs.SequenceEqual(other.Kvs) && PrevKvs.SequenceEqual(other.PrevKvs);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Deleted, Kvs.Count, Count, Lease);

    /// <inheritdoc/>
    public override string ToString()
    {
        var text = new StringBuilder();
        if (Kvs.Count > 0)
        {
            text.Append('[').AppendJoin(", ", Kvs).Append(']');
        }
        else if (Deleted > 0)
        {
            text.Append(CultureInfo.InvariantCulture, $"deleted {Deleted}");
        }
        else if (Lease != 0)
        {
            text.Append(CultureInfo.InvariantCulture, $"lease {Lease} ttl {TtlSeconds}");
        }
        else
        {
            text.Append("[]");
        }

        if (Count != Kvs.Count)
        {
            text.Append(CultureInfo.InvariantCulture, $" count {Count}");
        }

        if (More)
        {
            text.Append(" more");
        }

        if (PrevKvs.Count > 0)
        {
            text.Append(" prev [").AppendJoin(", ", PrevKvs).Append(']');
        }

        return text.ToString();
    }
}

/// <summary>
/// What an etcd request returned: the store's revision after it (the response header's; for a read at
/// a past revision still the current one, as etcd), whether a transaction's compares held, and one
/// result per operation run; or an <see cref="Error"/> (then nothing else: revision 0, no results).
/// Equality compares everything, results element by element.
/// </summary>
public sealed record EtcdKvResponse(long Revision, bool Succeeded, IReadOnlyList<EtcdKvOperationResult> Results)
{
    /// <summary>The error answered instead of a result, or <see cref="EtcdKvError.None"/>.</summary>
    public EtcdKvError Error { get; init; }

    /// <summary>The answer of a request refused with <paramref name="error"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="error"/> is <see cref="EtcdKvError.None"/>.</exception>
    public static EtcdKvResponse Failure(EtcdKvError error)
    {
        if (error == EtcdKvError.None)
        {
            throw new ArgumentOutOfRangeException(nameof(error), error, "A failure needs an error.");
        }

        return new EtcdKvResponse(0, false, []) { Error = error };
    }

    /// <inheritdoc/>
    public bool Equals(EtcdKvResponse? other) =>
        other is not null && Error == other.Error && Revision == other.Revision && Succeeded == other.Succeeded && Results.SequenceEqual(other.Results);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Revision, Succeeded, Results.Count, Error);

    /// <inheritdoc/>
    public override string ToString() => Error != EtcdKvError.None
        ? $"error {Error}"
        : string.Create(CultureInfo.InvariantCulture, $"rev {Revision}{(Succeeded ? "" : " (compare failed)")} {string.Join("; ", Results)}");
}
