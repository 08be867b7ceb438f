using System.Globalization;
using System.Text;

namespace EmbeddedRaft.TestSupport.Linearizability;

/// <summary>What an etcd operation inside a request does.</summary>
public enum EtcdKvOperationKind
{
    /// <summary>Read a key or a range (etcd Range), at the current revision or at <see cref="EtcdKvOperation.Revision"/>.</summary>
    Range,

    /// <summary>Write a key (etcd Put), attached to <see cref="EtcdKvOperation.Lease"/> when not 0.</summary>
    Put,

    /// <summary>Delete a key or a range (etcd DeleteRange).</summary>
    DeleteRange,

    /// <summary>Grant lease <see cref="EtcdKvOperation.Lease"/> with <see cref="EtcdKvOperation.TtlSeconds"/> (etcd LeaseGrant). Creates no revision.</summary>
    LeaseGrant,

    /// <summary>
    /// Revoke lease <see cref="EtcdKvOperation.Lease"/> (etcd LeaseRevoke): its keys are deleted at one
    /// new revision (none when it holds no key). With <see cref="EtcdKvOperation.Expiry"/>, the
    /// leader's revocation of an expired lease, which does nothing when the lease is already gone.
    /// </summary>
    LeaseRevoke,

    /// <summary>Renew lease <see cref="EtcdKvOperation.Lease"/> (one etcd LeaseKeepAlive round). Creates no revision.</summary>
    LeaseKeepAlive,

    /// <summary>Compact the history at <see cref="EtcdKvOperation.Revision"/> (etcd Compact). Creates no revision.</summary>
    Compact,

    /// <summary>
    /// Not an etcd call: succeeds only when the store is exactly in <see cref="EtcdKvOperation.ExpectedState"/>
    /// (revision, compact revision, keys, leases). Ends a window of a split history (<see cref="HistoryWindows"/>).
    /// </summary>
    ExpectState,
}

/// <summary>
/// One etcd operation. <paramref name="RangeEnd"/> follows etcd: <see langword="null"/> for the
/// single key <paramref name="Key"/>, "\0" for every key from <paramref name="Key"/> on, otherwise
/// the keys in [Key, RangeEnd) in ordinal (byte) order. The options below apply to the kinds their
/// documentation names and are ignored by the others.
/// </summary>
public sealed record EtcdKvOperation(EtcdKvOperationKind Kind, string Key, string? RangeEnd = null, string? Value = null)
{
    /// <summary>Range: the revision to read at (0: the current one; a model without history refuses any other). Compact: the revision to compact at.</summary>
    public long Revision { get; init; }

    /// <summary>Range: at most this many keys (0: no limit); the result's More says whether more were in range.</summary>
    public long Limit { get; init; }

    /// <summary>Range: the keys without their values (etcd keys_only).</summary>
    public bool KeysOnly { get; init; }

    /// <summary>Range: only the count, no keys (etcd count_only).</summary>
    public bool CountOnly { get; init; }

    /// <summary>Put and DeleteRange: return the keys as they were before (etcd prev_kv).</summary>
    public bool PrevKv { get; init; }

    /// <summary>Put: the lease to attach (0: none). Lease operations: the lease acted on.</summary>
    public long Lease { get; init; }

    /// <summary>LeaseGrant: the TTL asked for, in seconds (the model raises it to its minimum TTL, as the store does).</summary>
    public long TtlSeconds { get; init; }

    /// <summary>LeaseRevoke: an expiry (the leader revoking a lease whose TTL ran out), not a client's revoke.</summary>
    public bool Expiry { get; init; }

    /// <summary>ExpectState: the state the store must be in.</summary>
    public EtcdKvState? ExpectedState { get; init; }

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

    /// <summary>Whether this operation changes keys or leases when it applies.</summary>
    public bool IsWrite => Kind is not (EtcdKvOperationKind.Range or EtcdKvOperationKind.ExpectState);

    /// <inheritdoc/>
    public override string ToString()
    {
        string range = RangeEnd is null ? Key : RangeEnd == "\0" ? $"[{Key}..)" : $"[{Key}..{RangeEnd})";
        var text = new StringBuilder();
        switch (Kind)
        {
            case EtcdKvOperationKind.Range:
                text.Append("get ").Append(range);
                AppendIf(text, Revision != 0, $" @{Revision}");
                AppendIf(text, Limit != 0, $" limit {Limit}");
                AppendIf(text, KeysOnly, " keys-only");
                AppendIf(text, CountOnly, " count-only");
                break;
            case EtcdKvOperationKind.Put:
                text.Append("put ").Append(Key).Append('=').Append(Value);
                AppendIf(text, Lease != 0, $" lease {Lease}");
                AppendIf(text, PrevKv, " prev-kv");
                break;
            case EtcdKvOperationKind.DeleteRange:
                text.Append("delete ").Append(range);
                AppendIf(text, PrevKv, " prev-kv");
                break;
            case EtcdKvOperationKind.LeaseGrant:
                text.Append(CultureInfo.InvariantCulture, $"lease-grant {Lease} ttl {TtlSeconds}");
                break;
            case EtcdKvOperationKind.LeaseRevoke:
                text.Append(CultureInfo.InvariantCulture, $"{(Expiry ? "lease-expiry" : "lease-revoke")} {Lease}");
                break;
            case EtcdKvOperationKind.LeaseKeepAlive:
                text.Append(CultureInfo.InvariantCulture, $"lease-keep-alive {Lease}");
                break;
            case EtcdKvOperationKind.Compact:
                text.Append(CultureInfo.InvariantCulture, $"compact {Revision}");
                break;
            default:
                text.Append("expect-state ").Append(ExpectedState);
                break;
        }

        return text.ToString();
    }

    private static void AppendIf(StringBuilder text, bool condition, string part)
    {
        if (condition)
        {
            text.Append(part);
        }
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

    /// <summary>The attached lease (0 for none or a missing key).</summary>
    Lease,
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
/// An etcd request in its most general form, a transaction: if every compare holds, the
/// <see cref="Success"/> operations run, otherwise the <see cref="Failure"/> ones. A plain put,
/// delete or range is a transaction with no compares and one operation (as etcd's server treats it);
/// a lease call, a compaction and an expected state are always alone in their request.
/// </summary>
public sealed record EtcdKvRequest(IReadOnlyList<EtcdCompare> Compares, IReadOnlyList<EtcdKvOperation> Success, IReadOnlyList<EtcdKvOperation> Failure)
{
    /// <summary>A request of the one operation <paramref name="operation"/>.</summary>
    public static EtcdKvRequest Of(EtcdKvOperation operation) => new([], [operation], []);

    /// <summary>A put.</summary>
    public static EtcdKvRequest Put(string key, string value) => Of(EtcdKvOperation.Put(key, value));

    /// <summary>A put of <paramref name="key"/> attached to <paramref name="lease"/>.</summary>
    public static EtcdKvRequest PutWithLease(string key, string value, long lease) => Of(EtcdKvOperation.Put(key, value) with { Lease = lease });

    /// <summary>A delete of one key.</summary>
    public static EtcdKvRequest Delete(string key) => Of(EtcdKvOperation.Delete(key));

    /// <summary>A linearizable get of one key.</summary>
    public static EtcdKvRequest Get(string key) => Of(EtcdKvOperation.Get(key));

    /// <summary>A linearizable get of one key as it was at <paramref name="revision"/>.</summary>
    public static EtcdKvRequest GetAt(string key, long revision) => Of(EtcdKvOperation.Get(key) with { Revision = revision });

    /// <summary>A linearizable range read of [<paramref name="key"/>, <paramref name="rangeEnd"/>).</summary>
    public static EtcdKvRequest Range(string key, string rangeEnd) => Of(EtcdKvOperation.Range(key, rangeEnd));

    /// <summary>Grants lease <paramref name="id"/> (chosen by the client, as the simulator does) for <paramref name="ttlSeconds"/>.</summary>
    public static EtcdKvRequest LeaseGrant(long id, long ttlSeconds) => Of(new EtcdKvOperation(EtcdKvOperationKind.LeaseGrant, "") { Lease = id, TtlSeconds = ttlSeconds });

    /// <summary>Revokes lease <paramref name="id"/>.</summary>
    public static EtcdKvRequest LeaseRevoke(long id) => Of(new EtcdKvOperation(EtcdKvOperationKind.LeaseRevoke, "") { Lease = id });

    /// <summary>
    /// The expiry of lease <paramref name="id"/>, a nondeterministic event: record one indeterminate
    /// operation of it per granted lease, invoked when the grant was, so the checker may place the
    /// revocation anywhere after the grant (or nowhere). Sound, and deliberately not strict about
    /// when a TTL runs out: expiry timing is the lease checker's and the leader's business.
    /// </summary>
    public static EtcdKvRequest LeaseExpiry(long id) => Of(new EtcdKvOperation(EtcdKvOperationKind.LeaseRevoke, "") { Lease = id, Expiry = true });

    /// <summary>Renews lease <paramref name="id"/>.</summary>
    public static EtcdKvRequest LeaseKeepAlive(long id) => Of(new EtcdKvOperation(EtcdKvOperationKind.LeaseKeepAlive, "") { Lease = id });

    /// <summary>Compacts the history at <paramref name="revision"/>.</summary>
    public static EtcdKvRequest Compact(long revision) => Of(new EtcdKvOperation(EtcdKvOperationKind.Compact, "") { Revision = revision });

    /// <summary>Succeeds only in exactly <paramref name="state"/> (see <see cref="EtcdKvOperationKind.ExpectState"/>).</summary>
    public static EtcdKvRequest ExpectState(EtcdKvState state) => Of(new EtcdKvOperation(EtcdKvOperationKind.ExpectState, "") { ExpectedState = state });

    /// <summary>Compare-and-set on the value: if <paramref name="key"/> holds <paramref name="expected"/>, put <paramref name="value"/>; otherwise get the key.</summary>
    public static EtcdKvRequest CompareValueAndPut(string key, string expected, string value) =>
        new([new EtcdCompare(key, EtcdCompareTarget.Value, EtcdCompareResult.Equal, expected)], [EtcdKvOperation.Put(key, value)], [EtcdKvOperation.Get(key)]);

    /// <summary>Compare-and-set on the mod revision: if <paramref name="key"/> was last written at <paramref name="modRevision"/> (0: absent), put <paramref name="value"/>; otherwise get the key.</summary>
    public static EtcdKvRequest CompareModRevisionAndPut(string key, long modRevision, string value) =>
        new([new EtcdCompare(key, EtcdCompareTarget.ModRevision, EtcdCompareResult.Equal, Number: modRevision)], [EtcdKvOperation.Put(key, value)], [EtcdKvOperation.Get(key)]);

    /// <summary>Whether this is a lease call, a compaction or an expected state (always alone in its request).</summary>
    public bool IsSingleCall => Compares.Count == 0 && Failure.Count == 0 && Success.Count == 1
        && Success[0].Kind is not (EtcdKvOperationKind.Range or EtcdKvOperationKind.Put or EtcdKvOperationKind.DeleteRange);

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
