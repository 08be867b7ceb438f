using System.Globalization;
using System.Text.Json.Nodes;

namespace EmbeddedRaft.Mvcc.Tests.EtcdCompat;

/// <summary>
/// Reads the requests of a recording (etcd's gateway JSON: proto3 JSON with base64 bytes, int64 as
/// strings, absent fields at their default) into MvccStore's request types, field by field.
/// </summary>
internal static class EtcdJsonRequests
{
    public static RangeRequest Range(JsonObject json) => new()
    {
        Key = Bytes(json, "key"),
        RangeEnd = Bytes(json, "range_end"),
        Limit = Int64(json, "limit"),
        Revision = Int64(json, "revision"),
        SortOrder = Enum<SortOrder>(json, "sort_order"),
        SortTarget = Enum<SortTarget>(json, "sort_target"),
        KeysOnly = Bool(json, "keys_only"),
        CountOnly = Bool(json, "count_only"),
        MinModRevision = Int64(json, "min_mod_revision"),
        MaxModRevision = Int64(json, "max_mod_revision"),
        MinCreateRevision = Int64(json, "min_create_revision"),
        MaxCreateRevision = Int64(json, "max_create_revision"),
    };

    public static PutRequest Put(JsonObject json) => new()
    {
        Key = Bytes(json, "key"),
        Value = json["value_fill"] is JsonObject fill
            ? Enumerable.Repeat((byte)(int)fill["byte"]!, (int)fill["length"]!).ToArray()
            : Bytes(json, "value"),
        Lease = Int64(json, "lease"),
        PrevKv = Bool(json, "prev_kv"),
        IgnoreValue = Bool(json, "ignore_value"),
        IgnoreLease = Bool(json, "ignore_lease"),
    };

    public static DeleteRangeRequest DeleteRange(JsonObject json) => new()
    {
        Key = Bytes(json, "key"),
        RangeEnd = Bytes(json, "range_end"),
        PrevKv = Bool(json, "prev_kv"),
    };

    public static TxnRequest Txn(JsonObject json) => new()
    {
        Compare = List(json, "compare", Compare),
        Success = List(json, "success", RequestOp),
        Failure = List(json, "failure", RequestOp),
    };

    public static long CompactionRevision(JsonObject json) => Int64(json, "revision");

    /// <summary>A lease request's "ID" (grant, revoke, time-to-live).</summary>
    public static long LeaseId(JsonObject json) => Int64(json, "ID");

    /// <summary>A lease grant's "TTL", in seconds.</summary>
    public static long LeaseTtl(JsonObject json) => Int64(json, "TTL");

    /// <summary>A time-to-live request's "keys": list the attached keys.</summary>
    public static bool LeaseKeys(JsonObject json) => Bool(json, "keys");

    /// <summary>etcd's "physical": answer only once the compaction has removed the old revisions.</summary>
    public static bool CompactionPhysical(JsonObject json) => Bool(json, "physical");

    private static Compare Compare(JsonObject json) => new()
    {
        Target = Enum<CompareTarget>(json, "target"),
        Result = Enum<CompareResult>(json, "result"),
        Key = Bytes(json, "key"),
        RangeEnd = Bytes(json, "range_end"),
        Version = Int64(json, "version"),
        CreateRevision = Int64(json, "create_revision"),
        ModRevision = Int64(json, "mod_revision"),
        Value = Bytes(json, "value"),
        Lease = Int64(json, "lease"),
    };

    private static RequestOp RequestOp(JsonObject json) => json.Single().Key switch
    {
        "request_range" => Mvcc.RequestOp.Range(Range(json["request_range"]!.AsObject())),
        "request_put" => Mvcc.RequestOp.Put(Put(json["request_put"]!.AsObject())),
        "request_delete_range" => Mvcc.RequestOp.DeleteRange(DeleteRange(json["request_delete_range"]!.AsObject())),
        "request_txn" => Mvcc.RequestOp.Txn(Txn(json["request_txn"]!.AsObject())),
        string other => throw new InvalidDataException($"Unknown request op '{other}'."),
    };

    private static List<T> List<T>(JsonObject json, string name, Func<JsonObject, T> read) =>
        json[name] is JsonArray array ? array.Select(item => read(item!.AsObject())).ToList() : [];

    private static byte[] Bytes(JsonObject json, string name) =>
        json[name] is JsonNode node ? Convert.FromBase64String((string)node!) : [];

    private static long Int64(JsonObject json, string name) =>
        json[name] is JsonNode node ? long.Parse((string)node!, CultureInfo.InvariantCulture) : 0;

    private static bool Bool(JsonObject json, string name) => json[name] is JsonNode node && (bool)node;

    /// <summary>etcd's enum names (NOT_EQUAL) to ours (NotEqual); absent is the zero value, as in proto3.</summary>
    private static T Enum<T>(JsonObject json, string name)
        where T : struct, Enum =>
        json[name] is JsonNode node ? System.Enum.Parse<T>(((string)node!).Replace("_", "", StringComparison.Ordinal), ignoreCase: true) : default;
}
