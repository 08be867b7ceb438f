using System.Collections.Immutable;

namespace EmbeddedRaft.TestSupport.Linearizability;

/// <summary>
/// The keys at one earlier revision (valid until the next newer node's revision) and the older ones:
/// an immutable list shared between states, with its hash chained so equal histories hash equal.
/// </summary>
internal sealed class EtcdKvPast
{
    private readonly int _hash;

    public EtcdKvPast(long revision, ImmutableSortedDictionary<string, EtcdKeyValue> keys, EtcdKvPast? older)
    {
        Revision = revision;
        Keys = keys;
        Older = older;
        var hash = new HashCode();
        hash.Add(revision);
        foreach (EtcdKeyValue kv in keys.Values)
        {
            hash.Add(kv);
        }

        hash.Add(older?._hash ?? 0);
        _hash = hash.ToHashCode();
    }

    public long Revision { get; }

    public ImmutableSortedDictionary<string, EtcdKeyValue> Keys { get; }

    public EtcdKvPast? Older { get; }

    public override int GetHashCode() => _hash;

    public override bool Equals(object? obj) => obj is EtcdKvPast other && ChainsEqual(this, other);

    public static bool ChainsEqual(EtcdKvPast? a, EtcdKvPast? b)
    {
        while (true)
        {
            if (ReferenceEquals(a, b))
            {
                return true;
            }

            if (a is null || b is null || a._hash != b._hash || a.Revision != b.Revision || !EtcdKvState.KeysEqual(a.Keys, b.Keys))
            {
                return false;
            }

            a = a.Older;
            b = b.Older;
        }
    }

    /// <summary>This chain without the nodes no read at or above <paramref name="compactRevision"/> needs (the newest at or below it is kept).</summary>
    public EtcdKvPast TruncatedAt(long compactRevision)
    {
        var kept = new List<EtcdKvPast>();
        for (EtcdKvPast? node = this; node is not null; node = node.Older)
        {
            kept.Add(node);
            if (node.Revision <= compactRevision)
            {
                if (node.Older is null)
                {
                    return this;
                }

                break;
            }
        }

        EtcdKvPast? rebuilt = null;
        for (int i = kept.Count - 1; i >= 0; i--)
        {
            rebuilt = new EtcdKvPast(kept[i].Revision, kept[i].Keys, rebuilt);
        }

        return rebuilt!;
    }
}
