namespace EmbeddedRaft.Mvcc;

/// <summary>
/// One version of a key, as etcd's <c>mvccpb.KeyValue</c>: the key, its value, the revision that
/// created the key's current generation, the revision of this version, how many times the key has
/// been written since that creation (1 for the first put), and the lease it is attached to (0 for none).
/// </summary>
/// <remarks>Immutable. <see cref="Value"/> is empty when the range asked for keys only.</remarks>
public sealed class KeyValue
{
    /// <summary>The key.</summary>
    public ReadOnlyMemory<byte> Key { get; init; }

    /// <summary>The main revision of the put that created the key's current generation (after a delete, the next put starts a new one).</summary>
    public long CreateRevision { get; init; }

    /// <summary>The main revision of the put that wrote this version.</summary>
    public long ModRevision { get; init; }

    /// <summary>Puts since <see cref="CreateRevision"/>, counting it: 1 for a new key, restarting at 1 after a delete.</summary>
    public long Version { get; init; }

    /// <summary>The value (empty for keys-only ranges).</summary>
    public ReadOnlyMemory<byte> Value { get; init; }

    /// <summary>The lease the key is attached to, 0 for none.</summary>
    public long Lease { get; init; }

    /// <inheritdoc/>
    public override string ToString() =>
        $"{{key={MvccText.Show(Key.Span)} create={CreateRevision} mod={ModRevision} version={Version} value={MvccText.Show(Value.Span)} lease={Lease}}}";
}
