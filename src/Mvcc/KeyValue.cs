using System.Runtime.CompilerServices;

namespace EmbeddedRaft.Mvcc;

/// <summary>
/// One version of a key, as etcd's <c>mvccpb.KeyValue</c>: the key, its value, the revision that
/// created the key's current generation, the revision of this version, how many times the key has
/// been written since that creation (1 for the first put), and the lease it is attached to (0 for none).
/// </summary>
/// <remarks>
/// Immutable, except in the events of a watch that asked for reused events
/// (<see cref="WatchRequest.ReuseEvents"/>): there it is valid only until the watch's next
/// <c>MoveNextAsync</c>. <see cref="Value"/> is empty when the range asked for keys only.
/// </remarks>
public sealed class KeyValue
{
    // Fields, not auto-properties, so that a reusing watch's enumerator can overwrite its own instances (Overwrite).
    private ReadOnlyMemory<byte> _key;
    private ReadOnlyMemory<byte> _value;
    private long _createRevision;
    private long _modRevision;
    private long _version;
    private long _lease;

    /// <summary>The key.</summary>
    public ReadOnlyMemory<byte> Key { get => _key; init => _key = value; }

    /// <summary>The main revision of the put that created the key's current generation (after a delete, the next put starts a new one).</summary>
    public long CreateRevision { get => _createRevision; init => _createRevision = value; }

    /// <summary>The main revision of the put that wrote this version.</summary>
    public long ModRevision { get => _modRevision; init => _modRevision = value; }

    /// <summary>Puts since <see cref="CreateRevision"/>, counting it: 1 for a new key, restarting at 1 after a delete.</summary>
    public long Version { get => _version; init => _version = value; }

    /// <summary>The value (empty for keys-only ranges).</summary>
    public ReadOnlyMemory<byte> Value { get => _value; init => _value = value; }

    /// <summary>The lease the key is attached to, 0 for none.</summary>
    public long Lease { get => _lease; init => _lease = value; }

    /// <inheritdoc/>
    public override string ToString() =>
        $"{{key={MvccText.Show(Key.Span)} create={CreateRevision} mod={ModRevision} version={Version} value={MvccText.Show(Value.Span)} lease={Lease}}}";

    /// <summary>
    /// Rewrites every field: only for an instance a reusing watch's enumerator owns and has handed out
    /// no further than its previous response (see <see cref="WatchRequest.ReuseEvents"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Overwrite(ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> value, long createRevision, long modRevision, long version, long lease)
    {
        _key = key;
        _value = value;
        _createRevision = createRevision;
        _modRevision = modRevision;
        _version = version;
        _lease = lease;
    }
}
