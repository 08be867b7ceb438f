using System.Globalization;

namespace EmbeddedRaft.TestSupport.Linearizability;

/// <summary>A key as etcd returns it: value, create and mod revisions, version.</summary>
public sealed record EtcdKeyValue(string Key, string Value, long CreateRevision, long ModRevision, long Version)
{
    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Key}={Value}@c{CreateRevision}/m{ModRevision}/v{Version}");
}

/// <summary>
/// What one operation of a request returned: the keys a range read found, the number of keys a
/// delete removed (0 for the others). Equality compares the keys element by element.
/// </summary>
public sealed record EtcdKvOperationResult(IReadOnlyList<EtcdKeyValue> Kvs, long Deleted)
{
    /// <summary>A put's result.</summary>
    public static EtcdKvOperationResult PutDone { get; } = new([], 0);

    /// <inheritdoc/>
    public bool Equals(EtcdKvOperationResult? other) =>
        other is not null && Deleted == other.Deleted && Kvs.SequenceEqual(other.Kvs);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Deleted, Kvs.Count);

    /// <inheritdoc/>
    public override string ToString() => Kvs.Count > 0 ? $"[{string.Join(", ", Kvs)}]" : Deleted > 0 ? $"deleted {Deleted}" : "[]";
}

/// <summary>
/// What an etcd KV request returned: the store's revision after it (the response header's),
/// whether a transaction's compares held, and one result per operation run. Equality compares
/// everything, results element by element.
/// </summary>
public sealed record EtcdKvResponse(long Revision, bool Succeeded, IReadOnlyList<EtcdKvOperationResult> Results)
{
    /// <inheritdoc/>
    public bool Equals(EtcdKvResponse? other) =>
        other is not null && Revision == other.Revision && Succeeded == other.Succeeded && Results.SequenceEqual(other.Results);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Revision, Succeeded, Results.Count);

    /// <inheritdoc/>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"rev {Revision}{(Succeeded ? "" : " (compare failed)")} {string.Join("; ", Results)}");
}
