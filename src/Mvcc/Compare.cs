namespace EmbeddedRaft.Mvcc;

/// <summary>
/// A condition of a <see cref="TxnRequest"/>, as etcd's <c>Compare</c>: the <see cref="Target"/>
/// field of the key (or of every key in [<see cref="Key"/>, <see cref="RangeEnd"/>)) stands in the
/// <see cref="Result"/> relation to the value given in the property named by <see cref="Target"/>
/// (the other value properties are ignored). Over a range it holds when it holds for every key;
/// over no key it is tested against an absent key (all fields 0), except a value compare, which is then false.
/// </summary>
public sealed class Compare
{
    /// <summary>The relation tested.</summary>
    public CompareResult Result { get; init; }

    /// <summary>The field tested, and so which value property is used.</summary>
    public CompareTarget Target { get; init; }

    /// <summary>The key, or the first key of the range. Must not be empty.</summary>
    public ReadOnlyMemory<byte> Key { get; init; }

    /// <summary>Empty for a single key; the byte 0 for every key &gt;= <see cref="Key"/>; otherwise the exclusive end.</summary>
    public ReadOnlyMemory<byte> RangeEnd { get; init; }

    /// <summary>The version compared with <see cref="CompareTarget.Version"/>.</summary>
    public long Version { get; init; }

    /// <summary>The revision compared with <see cref="CompareTarget.Create"/>.</summary>
    public long CreateRevision { get; init; }

    /// <summary>The revision compared with <see cref="CompareTarget.Mod"/>.</summary>
    public long ModRevision { get; init; }

    /// <summary>The value compared with <see cref="CompareTarget.Value"/>.</summary>
    public ReadOnlyMemory<byte> Value { get; init; }

    /// <summary>The lease compared with <see cref="CompareTarget.Lease"/>.</summary>
    public long Lease { get; init; }
}
