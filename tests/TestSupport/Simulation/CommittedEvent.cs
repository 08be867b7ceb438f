using EmbeddedRaft.TestSupport.Linearizability;

namespace EmbeddedRaft.TestSupport.Simulation;

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

    /// <summary>
    /// Whether <paramref name="seen"/> is this event as a prev_kv watch may deliver it: the same, or,
    /// when this event's revision is at or below a compaction that was asked for
    /// (<paramref name="compactedThrough"/>, the highest), the same without its previous key. etcd reads
    /// prev_kv when it sends the event, at the event's revision - 1, and leaves it out when that revision
    /// is compacted by then (etcd's v3rpc watch.go sendLoop: <c>if err == nil &amp;&amp; len(r.KVs) != 0</c>;
    /// etcd-io/etcd#10681, and its robustness checker allows a nil prev_kv for that reason, #17352). The
    /// previous version is gone exactly when a compaction reached the event's revision.
    /// </summary>
    public bool MatchesAllowingCompactedPrevKv(CommittedEvent seen, long compactedThrough)
    {
        ArgumentNullException.ThrowIfNull(seen);
        return Equals(seen) || (seen.PrevKv is null && Revision <= compactedThrough && WithoutPrevKv().Equals(seen));
    }

    /// <summary>Whether a prev_kv watch may have delivered this event without its previous key (see <see cref="MatchesAllowingCompactedPrevKv"/>).</summary>
    public bool PrevKvMayBeCompacted(long compactedThrough) => PrevKv is null && Revision <= compactedThrough && !(Type == CommittedEventType.Put && Kv.Version == 1);

    /// <inheritdoc/>
    public override string ToString() =>
        $"{(Type == CommittedEventType.Put ? "PUT" : "DELETE")} {(Type == CommittedEventType.Put ? Kv.ToString() : $"{Kv.Key}@m{Kv.ModRevision}")}{(PrevKv is null ? "" : $" prev={PrevKv}")}";
}
