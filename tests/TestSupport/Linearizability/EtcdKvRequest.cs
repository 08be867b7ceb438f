using System.Globalization;

namespace EmbeddedRaft.TestSupport.Linearizability;

/// <summary>What an etcd KV operation inside a request does.</summary>
public enum EtcdKvOperationKind
{
    /// <summary>Read a key or a range (etcd Range at the current revision).</summary>
    Range,

    /// <summary>Write a key (etcd Put).</summary>
    Put,

    /// <summary>Delete a key or a range (etcd DeleteRange).</summary>
    DeleteRange,
}

/// <summary>
/// One etcd KV operation. <paramref name="RangeEnd"/> follows etcd: <see langword="null"/> for the
/// single key <paramref name="Key"/>, "\0" for every key from <paramref name="Key"/> on, otherwise
/// the keys in [Key, RangeEnd) in ordinal (byte) order.
/// </summary>
public sealed record EtcdKvOperation(EtcdKvOperationKind Kind, string Key, string? RangeEnd = null, string? Value = null)
{
    /// <summary>Reads <paramref name="key"/>.</summary>
    public static EtcdKvOperation Get(string key) => new(EtcdKvOperationKind.Range, key);

    /// <summary>Reads the keys in [<paramref name="key"/>, <paramref name="rangeEnd"/>).</summary>
    public static EtcdKvOperation Range(string key, string rangeEnd) => new(EtcdKvOperationKind.Range, key, rangeEnd);

    /// <summary>Writes <paramref name="value"/> to <paramref name="key"/>.</summary>
    public static EtcdKvOperation Put(string key, string value) => new(EtcdKvOperationKind.Put, key, null, value);

    /// <summary>Deletes <paramref name="key"/>.</summary>
    public static EtcdKvOperation Delete(string key) => new(EtcdKvOperationKind.DeleteRange, key);

    /// <summary>Deletes the keys in [<paramref name="key"/>, <paramref name="rangeEnd"/>).</summary>
    public static EtcdKvOperation DeleteRange(string key, string rangeEnd) => new(EtcdKvOperationKind.DeleteRange, key, rangeEnd);

    /// <inheritdoc/>
    public override string ToString()
    {
        string range = RangeEnd is null ? Key : RangeEnd == "\0" ? $"[{Key}..)" : $"[{Key}..{RangeEnd})";
        return Kind switch
        {
            EtcdKvOperationKind.Range => $"get {range}",
            EtcdKvOperationKind.Put => $"put {Key}={Value}",
            _ => $"delete {range}",
        };
    }
}

/// <summary>What an etcd transaction compare looks at.</summary>
public enum EtcdCompareTarget
{
    /// <summary>The value (a compare on a missing key is always false, as in etcd).</summary>
    Value,

    /// <summary>The version (0 for a missing key).</summary>
    Version,

    /// <summary>The create revision (0 for a missing key).</summary>
    CreateRevision,

    /// <summary>The mod revision (0 for a missing key).</summary>
    ModRevision,
}

/// <summary>How an etcd transaction compare compares.</summary>
public enum EtcdCompareResult
{
    /// <summary>Equal.</summary>
    Equal,

    /// <summary>Not equal.</summary>
    NotEqual,

    /// <summary>The key's is greater than the compare's.</summary>
    Greater,

    /// <summary>The key's is less than the compare's.</summary>
    Less,
}

/// <summary>
/// One compare of an etcd transaction on the single key <paramref name="Key"/>: its
/// <paramref name="Target"/> against <paramref name="Value"/> (for <see cref="EtcdCompareTarget.Value"/>)
/// or <paramref name="Number"/> (the others).
/// </summary>
public sealed record EtcdCompare(string Key, EtcdCompareTarget Target, EtcdCompareResult Result, string? Value = null, long Number = 0)
{
    /// <inheritdoc/>
    public override string ToString()
    {
        string op = Result switch
        {
            EtcdCompareResult.Equal => "=",
            EtcdCompareResult.NotEqual => "!=",
            EtcdCompareResult.Greater => ">",
            _ => "<",
        };
        string against = Target == EtcdCompareTarget.Value ? $"'{Value}'" : Number.ToString(CultureInfo.InvariantCulture);
        return $"{Target.ToString().ToLowerInvariant()}({Key}) {op} {against}";
    }
}

/// <summary>
/// An etcd KV request in its most general form, a transaction: if every compare holds, the
/// <see cref="Success"/> operations run, otherwise the <see cref="Failure"/> ones. A plain put,
/// delete or range is a transaction with no compares and one operation (as etcd's server treats it).
/// </summary>
public sealed record EtcdKvRequest(IReadOnlyList<EtcdCompare> Compares, IReadOnlyList<EtcdKvOperation> Success, IReadOnlyList<EtcdKvOperation> Failure)
{
    /// <summary>A put.</summary>
    public static EtcdKvRequest Put(string key, string value) => new([], [EtcdKvOperation.Put(key, value)], []);

    /// <summary>A delete of one key.</summary>
    public static EtcdKvRequest Delete(string key) => new([], [EtcdKvOperation.Delete(key)], []);

    /// <summary>A linearizable get of one key.</summary>
    public static EtcdKvRequest Get(string key) => new([], [EtcdKvOperation.Get(key)], []);

    /// <summary>A linearizable range read of [<paramref name="key"/>, <paramref name="rangeEnd"/>).</summary>
    public static EtcdKvRequest Range(string key, string rangeEnd) => new([], [EtcdKvOperation.Range(key, rangeEnd)], []);

    /// <summary>Compare-and-set on the value: if <paramref name="key"/> holds <paramref name="expected"/>, put <paramref name="value"/>; otherwise get the key.</summary>
    public static EtcdKvRequest CompareValueAndPut(string key, string expected, string value) =>
        new([new EtcdCompare(key, EtcdCompareTarget.Value, EtcdCompareResult.Equal, expected)], [EtcdKvOperation.Put(key, value)], [EtcdKvOperation.Get(key)]);

    /// <summary>Compare-and-set on the mod revision: if <paramref name="key"/> was last written at <paramref name="modRevision"/> (0: absent), put <paramref name="value"/>; otherwise get the key.</summary>
    public static EtcdKvRequest CompareModRevisionAndPut(string key, long modRevision, string value) =>
        new([new EtcdCompare(key, EtcdCompareTarget.ModRevision, EtcdCompareResult.Equal, Number: modRevision)], [EtcdKvOperation.Put(key, value)], [EtcdKvOperation.Get(key)]);

    /// <inheritdoc/>
    public override string ToString()
    {
        if (Compares.Count == 0 && Failure.Count == 0 && Success.Count == 1)
        {
            return Success[0].ToString();
        }

        return $"txn if [{string.Join(", ", Compares)}] then [{string.Join("; ", Success)}] else [{string.Join("; ", Failure)}]";
    }
}
