namespace EmbeddedRaft.Mvcc;

/// <summary>
/// One change of one key, as etcd's <c>mvccpb.Event</c>: a put carries the new version of the key;
/// a delete carries the key and the revision of the delete (<see cref="KeyValue.ModRevision"/>), its
/// other fields zero.
/// </summary>
/// <remarks>Immutable; one instance may be shared by every watcher that receives the change.</remarks>
public sealed class WatchEvent
{
    /// <summary>
    /// <see cref="Kv"/> of an event made without one: shared (immutable), so that making an event
    /// with its key-value, as the store does for each one it delivers, does not first allocate an
    /// empty one to throw away (80 bytes per event before; docs/benchmarks.md "Watches, session 11").
    /// </summary>
    private static readonly KeyValue s_noKeyValue = new();

    /// <summary>A put or a delete.</summary>
    public WatchEventType Type { get; init; }

    /// <summary>The key after the change: for a put its new version; for a delete only <see cref="KeyValue.Key"/> and <see cref="KeyValue.ModRevision"/> (the delete's revision).</summary>
    public KeyValue Kv { get; init; } = s_noKeyValue;

    /// <summary>
    /// The key's version just before the change when the watch asked for it
    /// (<see cref="WatchRequest.PrevKv"/>); null when it did not, when the change created the key, or
    /// when that version has been compacted away before the event was delivered (as etcd).
    /// </summary>
    public KeyValue? PrevKv { get; init; }

    /// <inheritdoc/>
    public override string ToString() => $"{Type} {Kv}{(PrevKv is null ? string.Empty : $" prev={PrevKv}")}";
}
