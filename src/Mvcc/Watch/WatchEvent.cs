using System.Runtime.CompilerServices;

namespace EmbeddedRaft.Mvcc;

/// <summary>
/// One change of one key, as etcd's <c>mvccpb.Event</c>: a put carries the new version of the key;
/// a delete carries the key and the revision of the delete (<see cref="KeyValue.ModRevision"/>), its
/// other fields zero.
/// </summary>
/// <remarks>
/// Immutable; one instance may be shared by every watcher that receives the change. The exception:
/// a watch that asked for reused events (<see cref="WatchRequest.ReuseEvents"/>) overwrites the
/// events it handed out in one response (and their <see cref="Kv"/>) for a later one, so there an
/// event is valid only until the watch's next <c>MoveNextAsync</c>.
/// </remarks>
public sealed class WatchEvent
{
    /// <summary>
    /// <see cref="Kv"/> of an event made without one: shared (immutable), so that making an event
    /// with its key-value, as the store does for each one it delivers, does not first allocate an
    /// empty one to throw away (80 bytes per event before; docs/benchmarks.md "Watches, session 11").
    /// </summary>
    private static readonly KeyValue s_noKeyValue = new();

    // Fields, not auto-properties, so that a reusing watch's enumerator can overwrite its own instances (Overwrite).
    private WatchEventType _type;
    private KeyValue _kv = s_noKeyValue;
    private KeyValue? _prevKv;

    /// <summary>A put or a delete.</summary>
    public WatchEventType Type { get => _type; init => _type = value; }

    /// <summary>The key after the change: for a put its new version; for a delete only <see cref="KeyValue.Key"/> and <see cref="KeyValue.ModRevision"/> (the delete's revision).</summary>
    public KeyValue Kv { get => _kv; init => _kv = value; }

    /// <summary>
    /// The key's version just before the change when the watch asked for it
    /// (<see cref="WatchRequest.PrevKv"/>); null when it did not, when the change created the key, or
    /// when that version has been compacted away before the event was delivered (as etcd).
    /// </summary>
    public KeyValue? PrevKv { get => _prevKv; init => _prevKv = value; }

    /// <inheritdoc/>
    public override string ToString() => $"{Type} {Kv}{(PrevKv is null ? string.Empty : $" prev={PrevKv}")}";

    /// <summary>
    /// Rewrites the type and previous key-value (<see cref="Kv"/> stays the same instance, for the
    /// caller to overwrite): only for an instance a reusing watch's enumerator owns, made with a
    /// <see cref="Kv"/> of its own, and handed out no further than its previous response (see
    /// <see cref="WatchRequest.ReuseEvents"/>).
    /// </summary>
    /// <exception cref="InvariantViolationException">The event has the shared empty key-value, which must never change.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Overwrite(WatchEventType type, KeyValue? prevKv)
    {
        if (ReferenceEquals(_kv, s_noKeyValue))
        {
            throw new InvariantViolationException("MVCC watch: a reused event without a key-value of its own.");
        }

        _type = type;
        _prevKv = prevKv;
    }
}
