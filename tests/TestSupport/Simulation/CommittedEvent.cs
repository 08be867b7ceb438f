using EmbeddedRaft.TestSupport.Linearizability;

namespace EmbeddedRaft.TestSupport.Simulation;

/// <summary>What a committed event did to its key (etcd's <c>mvccpb.Event.EventType</c>).</summary>
public enum CommittedEventType
{
    /// <summary>The key was written (created or updated).</summary>
    Put,

    /// <summary>The key was deleted (by a delete, a transaction or a lease revocation).</summary>
    Delete,
}

/// <summary>
/// One event of the committed history exactly as a watch delivers it: for a put, the key as written
/// (value, create and mod revision, version, lease); for a delete, the key and the deleting revision
/// only (the other fields 0 and the value empty, as etcd sends it); <paramref name="PrevKv"/> the key
/// as it was before the event when the watch asked for it (etcd's <c>prev_kv</c>), otherwise null.
/// </summary>
/// <param name="Type">Put or delete.</param>
/// <param name="Kv">The key after the event (see above for a delete).</param>
/// <param name="PrevKv">The key before the event, when the watch has prev_kv and the key existed.</param>
public sealed record CommittedEvent(CommittedEventType Type, EtcdKeyValue Kv, EtcdKeyValue? PrevKv = null)
{
    /// <summary>The revision that made the event (the key's mod revision).</summary>
    public long Revision => Kv.ModRevision;

    /// <summary>The key.</summary>
    public string Key => Kv.Key;

    /// <summary>A put event of <paramref name="kv"/>.</summary>
    public static CommittedEvent Put(EtcdKeyValue kv, EtcdKeyValue? prevKv = null) => new(CommittedEventType.Put, kv, prevKv);

    /// <summary>A delete event of <paramref name="key"/> at <paramref name="revision"/>, shaped as a watch delivers it.</summary>
    public static CommittedEvent Delete(string key, long revision, EtcdKeyValue? prevKv = null) =>
        new(CommittedEventType.Delete, new EtcdKeyValue(key, "", 0, revision, 0), prevKv);

    /// <summary>The same event without its previous key (what a watch without prev_kv receives).</summary>
    public CommittedEvent WithoutPrevKv() => PrevKv is null ? this : this with { PrevKv = null };

    /// <inheritdoc/>
    public override string ToString() =>
        $"{(Type == CommittedEventType.Put ? "PUT" : "DELETE")} {(Type == CommittedEventType.Put ? Kv.ToString() : $"{Kv.Key}@m{Kv.ModRevision}")}{(PrevKv is null ? "" : $" prev={PrevKv}")}";
}
