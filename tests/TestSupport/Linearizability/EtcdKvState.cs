using System.Collections.Immutable;
using System.Globalization;

namespace EmbeddedRaft.TestSupport.Linearizability;

/// <summary>
/// The state of <see cref="EtcdKvModel"/>: the store's current revision and its live keys.
/// Immutable; equality compares the revision and every key.
/// </summary>
public sealed class EtcdKvState : IEquatable<EtcdKvState>
{
    // 0 until computed; an int so that a check running on several threads reads it whole.
    private int _hash;

    internal EtcdKvState(long revision, ImmutableSortedDictionary<string, EtcdKeyValue> keys)
    {
        Revision = revision;
        Keys = keys;
    }

    /// <summary>The store's revision (etcd's header revision): the last revision a write created.</summary>
    public long Revision { get; }

    /// <summary>The live keys, in ordinal order.</summary>
    public ImmutableSortedDictionary<string, EtcdKeyValue> Keys { get; }

    /// <inheritdoc/>
    public bool Equals(EtcdKvState? other)
    {
        if (other is null || Revision != other.Revision || Keys.Count != other.Keys.Count || GetHashCode() != other.GetHashCode())
        {
            return false;
        }

        foreach (KeyValuePair<string, EtcdKeyValue> pair in Keys)
        {
            if (!other.Keys.TryGetValue(pair.Key, out EtcdKeyValue? theirs) || theirs != pair.Value)
            {
                return false;
            }
        }

        return true;
    }

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as EtcdKvState);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        if (_hash != 0)
        {
            return _hash;
        }

        var hash = new HashCode();
        hash.Add(Revision);
        foreach (EtcdKeyValue kv in Keys.Values)
        {
            hash.Add(kv);
        }

        int value = hash.ToHashCode();
        _hash = value == 0 ? 1 : value;
        return _hash;
    }

    /// <inheritdoc/>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"rev {Revision} {{{string.Join(", ", Keys.Values)}}}");
}
