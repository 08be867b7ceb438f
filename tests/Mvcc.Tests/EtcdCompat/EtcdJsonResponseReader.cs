using System.Globalization;
using System.Text.Json.Nodes;

namespace EmbeddedRaft.Mvcc.Tests.EtcdCompat;

/// <summary>
/// Reads etcd's recorded responses into MvccStore's response types: the inverse of
/// <see cref="EtcdJsonResponses"/>, used only to prove that writing a response back gives etcd's JSON
/// byte for byte, so a replay difference is the store's and never the conversion's.
/// </summary>
internal static class EtcdJsonResponseReader
{
    public static JsonObject RoundTrip(string op, JsonObject response) => op switch
    {
        "range" => EtcdJsonResponses.Range(Range(response)),
        "put" => EtcdJsonResponses.Put(Put(response)),
        "deleterange" => EtcdJsonResponses.DeleteRange(DeleteRange(response)),
        "txn" => EtcdJsonResponses.Txn(Txn(response)),
        "compaction" => EtcdJsonResponses.Compact(new CompactResponse { Header = Header(response) }),
        "grant" => EtcdJsonResponses.LeaseGrant(new LeaseGrantResponse { Header = Header(response), Id = Int64(response, "ID"), TtlSeconds = Int64(response, "TTL") }),
        "revoke" => EtcdJsonResponses.LeaseRevoke(new LeaseRevokeResponse { Header = Header(response) }),
        "timetolive" => EtcdJsonResponses.LeaseTimeToLive(new LeaseTimeToLiveResponse
        {
            Header = Header(response),
            Id = Int64(response, "ID"),
            TtlSeconds = Int64(response, "TTL"),
            GrantedTtlSeconds = Int64(response, "grantedTTL"),
            Keys = response["keys"] is JsonArray keys ? keys.Select(k => (ReadOnlyMemory<byte>)Convert.FromBase64String((string)k!)).ToList() : [],
        }),
        "leases" => EtcdJsonResponses.LeaseLeases(new LeaseLeasesResponse
        {
            Header = Header(response),
            Leases = response["leases"] is JsonArray leases ? leases.Select(l => Int64(l!.AsObject(), "ID")).ToList() : [],
        }),
        _ => throw new InvalidDataException($"Unknown operation '{op}'."),
    };

    private static RangeResponse Range(JsonObject json) => new()
    {
        Header = Header(json),
        Kvs = KeyValues(json, "kvs"),
        More = json["more"] is JsonNode more && (bool)more,
        Count = Int64(json, "count"),
    };

    private static PutResponse Put(JsonObject json) => new()
    {
        Header = Header(json),
        PrevKv = json["prev_kv"] is JsonObject prev ? KeyValue(prev) : null,
    };

    private static DeleteRangeResponse DeleteRange(JsonObject json) => new()
    {
        Header = Header(json),
        Deleted = Int64(json, "deleted"),
        PrevKvs = KeyValues(json, "prev_kvs"),
    };

    private static TxnResponse Txn(JsonObject json) => new()
    {
        Header = Header(json),
        Succeeded = json["succeeded"] is JsonNode succeeded && (bool)succeeded,
        Responses = json["responses"] is JsonArray responses ? responses.Select(r => ResponseOp(r!.AsObject())).ToList() : [],
    };

    private static ResponseOp ResponseOp(JsonObject json) => json.Single().Key switch
    {
        "response_range" => new ResponseOp { ResponseRange = Range(json["response_range"]!.AsObject()) },
        "response_put" => new ResponseOp { ResponsePut = Put(json["response_put"]!.AsObject()) },
        "response_delete_range" => new ResponseOp { ResponseDeleteRange = DeleteRange(json["response_delete_range"]!.AsObject()) },
        "response_txn" => new ResponseOp { ResponseTxn = Txn(json["response_txn"]!.AsObject()) },
        string other => throw new InvalidDataException($"Unknown response op '{other}'."),
    };

    private static ResponseHeader Header(JsonObject json) => new() { Revision = Int64(json["header"]!.AsObject(), "revision") };

    private static List<KeyValue> KeyValues(JsonObject json, string name) =>
        json[name] is JsonArray array ? array.Select(kv => KeyValue(kv!.AsObject())).ToList() : [];

    private static KeyValue KeyValue(JsonObject json) => new()
    {
        Key = Bytes(json, "key"),
        CreateRevision = Int64(json, "create_revision"),
        ModRevision = Int64(json, "mod_revision"),
        Version = Int64(json, "version"),
        Value = Bytes(json, "value"),
        Lease = Int64(json, "lease"),
    };

    private static byte[] Bytes(JsonObject json, string name) => json[name] is JsonNode node ? Convert.FromBase64String((string)node!) : [];

    private static long Int64(JsonObject json, string name) =>
        json[name] is JsonNode node ? long.Parse((string)node!, CultureInfo.InvariantCulture) : 0;
}
