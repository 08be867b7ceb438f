using System.Collections.Immutable;
using System.Globalization;

namespace EmbeddedRaft.TestSupport.Linearizability;

/// <summary>
/// The state of <see cref="EtcdKvModel"/>: the store's current revision, its compact revision, its live
/// keys, its live leases (id → granted TTL) and, when the model keeps history, the keys as they were at
/// each earlier revision since the state the history started from (for reads at a past revision).
/// Immutable; equality compares all of it, the history included (two states that differ only in what
/// a past read would see are different states, or memoization would be unsound).
/// </summary>
public sealed class EtcdKvState : IEquatable<EtcdKvState>
{
    private static readonly ImmutableSortedDictionary<string, EtcdKeyValue> s_noKeys = ImmutableSortedDictionary.Create<string, EtcdKeyValue>(StringComparer.Ordinal);
    private static readonly ImmutableSortedDictionary<long, long> s_noLeases = ImmutableSortedDictionary<long, long>.Empty;

    // 0 until computed; an int so that a check running on several threads reads it whole.
    private int _hash;

    internal EtcdKvState(
        long revision,
        long compactRevision,
        ImmutableSortedDictionary<string, EtcdKeyValue> keys,
        ImmutableSortedDictionary<long, long> leases,
        EtcdKvPast? past)
    {
        Revision = revision;
        CompactRevision = compactRevision;
        Keys = keys;
        Leases = leases;
        Past = past;
    }

    /// <summary>The store's revision (etcd's header revision): the last revision a write created.</summary>
    public long Revision { get; }

    /// <summary>The revision the history was compacted at (0: never). Reads below it answer Compacted.</summary>
    public long CompactRevision { get; }

    /// <summary>The live keys, in ordinal order.</summary>
    public ImmutableSortedDictionary<string, EtcdKeyValue> Keys { get; }

    /// <summary>The live leases: id → granted TTL in seconds.</summary>
    public ImmutableSortedDictionary<long, long> Leases { get; }

    /// <summary>The keys at earlier revisions, newest first; null when the model keeps no history.</summary>
    internal EtcdKvPast? Past { get; }

    /// <summary>
    /// A state with the given revision, compact revision, keys and leases and no history before it (a
    /// model keeping history learns it from here on): the start of a new store, or what a quiescent
    /// cluster was read to hold (the start of a window, see <see cref="HistoryWindows"/>).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A negative revision, a compact revision above the revision, a key modified after the revision, or a lease id or TTL below 1.</exception>
    /// <exception cref="ArgumentException">A key twice, a lease id twice, or a key attached to a lease not in <paramref name="leases"/>.</exception>
    public static EtcdKvState Create(long revision, long compactRevision = 0, IEnumerable<EtcdKeyValue>? keys = null, IEnumerable<KeyValuePair<long, long>>? leases = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(revision);
        if (compactRevision < 0 || compactRevision > revision)
        {
            throw new ArgumentOutOfRangeException(nameof(compactRevision), compactRevision, $"The compact revision must be from 0 to the revision ({revision}).");
        }

        var leaseMap = s_noLeases.ToBuilder();
        foreach ((long id, long ttl) in leases ?? [])
        {
            if (id < 1 || ttl < 1)
            {
                throw new ArgumentOutOfRangeException(nameof(leases), $"Lease {id} with TTL {ttl}: ids and TTLs are at least 1.");
            }

            if (!leaseMap.TryAdd(id, ttl))
            {
                throw new ArgumentException($"Lease {id} is given twice.", nameof(leases));
            }
        }

        var keyMap = s_noKeys.ToBuilder();
        foreach (EtcdKeyValue kv in keys ?? [])
        {
            if (kv.ModRevision > revision || kv.CreateRevision > kv.ModRevision || kv.Version < 1)
            {
                throw new ArgumentOutOfRangeException(nameof(keys), $"{kv} does not fit a store at revision {revision}.");
            }

            if (kv.Lease != 0 && !leaseMap.ContainsKey(kv.Lease))
            {
                throw new ArgumentException($"{kv} is attached to lease {kv.Lease}, which is not among the leases.", nameof(keys));
            }

            if (!keyMap.TryAdd(kv.Key, kv))
            {
                throw new ArgumentException($"Key '{kv.Key}' is given twice.", nameof(keys));
            }
        }

        return new EtcdKvState(revision, compactRevision, keyMap.ToImmutable(), leaseMap.ToImmutable(), past: null);
    }

    /// <summary>Whether <paramref name="other"/> holds the same store (revision, compact revision, keys, leases), whatever its history.</summary>
    public bool SameStore(EtcdKvState other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return Revision == other.Revision && CompactRevision == other.CompactRevision && KeysEqual(Keys, other.Keys) && LeasesEqual(Leases, other.Leases);
    }

    /// <summary>The keys as they were at <paramref name="revision"/> (at most <see cref="Revision"/>), or null when the state does not know (before its history).</summary>
    internal ImmutableSortedDictionary<string, EtcdKeyValue>? KeysAt(long revision)
    {
        if (revision >= Revision)
        {
            return Keys;
        }

        for (EtcdKvPast? node = Past; node is not null; node = node.Older)
        {
            if (node.Revision <= revision)
            {
                return node.Keys;
            }
        }

        return null;
    }

    /// <inheritdoc/>
    public bool Equals(EtcdKvState? other)
    {
        if (ReferenceEquals(this, other))
        {
            return true;
        }

        if (other is null || GetHashCode() != other.GetHashCode() || !SameStore(other))
        {
            return false;
        }

        return EtcdKvPast.ChainsEqual(Past, other.Past);
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
        hash.Add(CompactRevision);
        foreach (EtcdKeyValue kv in Keys.Values)
        {
            hash.Add(kv);
        }

        foreach ((long id, long ttl) in Leases)
        {
            hash.Add(id);
            hash.Add(ttl);
        }

        hash.Add(Past?.GetHashCode() ?? 0);
        int value = hash.ToHashCode();
        _hash = value == 0 ? 1 : value;
        return _hash;
    }

    /// <inheritdoc/>
    public override string ToString()
    {
        string compacted = CompactRevision > 0 ? string.Create(CultureInfo.InvariantCulture, $" compacted@{CompactRevision}") : "";
        string leases = Leases.Count > 0 ? $" leases {{{string.Join(", ", Leases.Select(l => string.Create(CultureInfo.InvariantCulture, $"{l.Key} ttl {l.Value}")))}}}" : "";
        return string.Create(CultureInfo.InvariantCulture, $"rev {Revision}{compacted} {{{string.Join(", ", Keys.Values)}}}{leases}");
    }

    private static bool LeasesEqual(ImmutableSortedDictionary<long, long> a, ImmutableSortedDictionary<long, long> b)
    {
        if (ReferenceEquals(a, b))
        {
            return true;
        }

        if (a.Count != b.Count)
        {
            return false;
        }

        foreach ((long id, long ttl) in a)
        {
            if (!b.TryGetValue(id, out long theirs) || theirs != ttl)
            {
                return false;
            }
        }

        return true;
    }

    internal static bool KeysEqual(ImmutableSortedDictionary<string, EtcdKeyValue> a, ImmutableSortedDictionary<string, EtcdKeyValue> b)
    {
        if (ReferenceEquals(a, b))
        {
            return true;
        }

        if (a.Count != b.Count)
        {
            return false;
        }

        foreach (KeyValuePair<string, EtcdKeyValue> pair in a)
        {
            if (!b.TryGetValue(pair.Key, out EtcdKeyValue? theirs) || theirs != pair.Value)
            {
                return false;
            }
        }

        return true;
    }
}

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
