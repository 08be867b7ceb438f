namespace EmbeddedRaft.Mvcc;

/// <summary>
/// Reads keys, as etcd's <c>RangeRequest</c>: one key (<see cref="RangeEnd"/> empty), the keys in
/// [<see cref="Key"/>, <see cref="RangeEnd"/>) (a prefix: <see cref="KeyRange.PrefixEnd"/>), or every
/// key &gt;= <see cref="Key"/> (<see cref="RangeEnd"/> is the single byte 0, <see cref="KeyRange.AllKeysFrom"/>).
/// </summary>
public sealed class RangeRequest
{
    /// <summary>The key, or the first key of the range. Must not be empty.</summary>
    public ReadOnlyMemory<byte> Key { get; init; }

    /// <summary>Empty for a single key; the byte 0 for every key &gt;= <see cref="Key"/>; otherwise the exclusive end.</summary>
    public ReadOnlyMemory<byte> RangeEnd { get; init; }

    /// <summary>At most this many keys (0: no limit); <see cref="RangeResponse.More"/> says whether more matched. Not negative.</summary>
    public long Limit { get; init; }

    /// <summary>Read the store as of this revision (0: the current one). Not negative; not above the current revision; not below the compact revision.</summary>
    public long Revision { get; init; }

    /// <summary>Sort order; see <see cref="SortOrder"/>.</summary>
    public SortOrder SortOrder { get; init; }

    /// <summary>Sort field; see <see cref="SortTarget"/>.</summary>
    public SortTarget SortTarget { get; init; }

    /// <summary>Return keys without values.</summary>
    public bool KeysOnly { get; init; }

    /// <summary>Return only <see cref="RangeResponse.Count"/>, no key-values.</summary>
    public bool CountOnly { get; init; }

    /// <summary>Drop keys whose mod revision is below this (0: no bound).</summary>
    public long MinModRevision { get; init; }

    /// <summary>Drop keys whose mod revision is above this (0: no bound).</summary>
    public long MaxModRevision { get; init; }

    /// <summary>Drop keys whose create revision is below this (0: no bound).</summary>
    public long MinCreateRevision { get; init; }

    /// <summary>Drop keys whose create revision is above this (0: no bound).</summary>
    public long MaxCreateRevision { get; init; }
}
