using System.Globalization;
using System.Text.Json.Nodes;

namespace EmbeddedRaft.Mvcc.Tests.EtcdCompat;

/// <summary>
/// Writes MvccStore's responses as etcd's gateway writes its own: proto3 JSON, field names as in
/// etcd's rpc.proto, base64 bytes, int64 as strings, and every field at its default value (0, false,
/// empty bytes, empty list, absent prev kv) left out. A header is always written, even when its
/// revision is 0 and it shows as <c>{}</c>, because etcd always sets one.
/// </summary>
internal static class EtcdJsonResponses
{
    public static JsonObject Range(RangeResponse response)
    {
        var json = new JsonObject { ["header"] = Header(response.Header) };
        AddList(json, "kvs", response.Kvs);
        AddIf(json, "more", response.More);
        AddInt64(json, "count", response.Count);
        return json;
    }

    public static JsonObject Put(PutResponse response)
    {
        var json = new JsonObject { ["header"] = Header(response.Header) };
        if (response.PrevKv is KeyValue prev)
        {
            json["prev_kv"] = KeyValue(prev);
        }

        return json;
    }

    public static JsonObject DeleteRange(DeleteRangeResponse response)
    {
        var json = new JsonObject { ["header"] = Header(response.Header) };
        AddInt64(json, "deleted", response.Deleted);
        AddList(json, "prev_kvs", response.PrevKvs);
        return json;
    }

    public static JsonObject Txn(TxnResponse response)
    {
        var json = new JsonObject { ["header"] = Header(response.Header) };
        AddIf(json, "succeeded", response.Succeeded);
        if (response.Responses.Count > 0)
        {
            json["responses"] = new JsonArray([.. response.Responses.Select(ResponseOp)]);
        }

        return json;
    }

    public static JsonObject Compact(CompactResponse response) => new() { ["header"] = Header(response.Header) };

    public static JsonObject LeaseGrant(LeaseGrantResponse response)
    {
        var json = new JsonObject { ["header"] = Header(response.Header) };
        AddInt64(json, "ID", response.Id);
        AddInt64(json, "TTL", response.TtlSeconds);
        return json;
    }

    public static JsonObject LeaseRevoke(LeaseRevokeResponse response) => new() { ["header"] = Header(response.Header) };

    public static JsonObject LeaseTimeToLive(LeaseTimeToLiveResponse response)
    {
        var json = new JsonObject { ["header"] = Header(response.Header) };
        AddInt64(json, "ID", response.Id);
        AddInt64(json, "TTL", response.TtlSeconds);
        AddInt64(json, "grantedTTL", response.GrantedTtlSeconds);
        if (response.Keys.Count > 0)
        {
            json["keys"] = new JsonArray([.. response.Keys.Select(k => (JsonNode)Convert.ToBase64String(k.Span))]);
        }

        return json;
    }

    public static JsonObject LeaseLeases(LeaseLeasesResponse response)
    {
        var json = new JsonObject { ["header"] = Header(response.Header) };
        if (response.Leases.Count > 0)
        {
            json["leases"] = new JsonArray([.. response.Leases.Select(id => (JsonNode)new JsonObject { ["ID"] = id.ToString(CultureInfo.InvariantCulture) })]);
        }

        return json;
    }

    private static JsonObject ResponseOp(ResponseOp op) => op switch
    {
        { ResponseRange: RangeResponse range } => new JsonObject { ["response_range"] = Range(range) },
        { ResponsePut: PutResponse put } => new JsonObject { ["response_put"] = Put(put) },
        { ResponseDeleteRange: DeleteRangeResponse delete } => new JsonObject { ["response_delete_range"] = DeleteRange(delete) },
        { ResponseTxn: TxnResponse txn } => new JsonObject { ["response_txn"] = Txn(txn) },
        _ => new JsonObject(),
    };

    private static JsonObject Header(ResponseHeader header)
    {
        var json = new JsonObject();
        AddInt64(json, "revision", header.Revision);
        return json;
    }

    private static JsonObject KeyValue(KeyValue kv)
    {
        var json = new JsonObject();
        AddBytes(json, "key", kv.Key);
        AddInt64(json, "create_revision", kv.CreateRevision);
        AddInt64(json, "mod_revision", kv.ModRevision);
        AddInt64(json, "version", kv.Version);
        AddBytes(json, "value", kv.Value);
        AddInt64(json, "lease", kv.Lease);
        return json;
    }

    private static void AddList(JsonObject json, string name, IReadOnlyList<KeyValue> kvs)
    {
        if (kvs.Count > 0)
        {
            json[name] = new JsonArray([.. kvs.Select(KeyValue)]);
        }
    }

    private static void AddIf(JsonObject json, string name, bool value)
    {
        if (value)
        {
            json[name] = true;
        }
    }

    private static void AddInt64(JsonObject json, string name, long value)
    {
        if (value != 0)
        {
            json[name] = value.ToString(CultureInfo.InvariantCulture);
        }
    }

    private static void AddBytes(JsonObject json, string name, ReadOnlyMemory<byte> value)
    {
        if (!value.IsEmpty)
        {
            json[name] = Convert.ToBase64String(value.Span);
        }
    }
}
