using System.Text.Json.Nodes;

namespace EmbeddedRaft.EtcdRecorder;

/// <summary>
/// Writes one recording as JSON lines: a first line describing it ("format", "etcd_version", "seed",
/// "operations", the limits etcd ran with), then one line per request:
/// <c>{"i": n, "op": "put", "request": {...}, "response": {...}}</c> or, when etcd refused it,
/// <c>{"i": n, "op": "put", "request": {...}, "error": {"code": grpc-code, "message": "..."}}</c>.
/// Requests and responses are etcd's gateway JSON; the headers' cluster_id, member_id and raft_term
/// are removed (they name the etcd process, not the store's answer).
/// </summary>
internal sealed class RecordingWriter : IDisposable
{
    public const string Format = "etcd-kv-recording/1";

    private static readonly string[] ProcessHeaderFields = ["cluster_id", "member_id", "raft_term"];

    private readonly StreamWriter _writer;
    private int _index;

    public RecordingWriter(string path, int seed, int operations, string etcdVersion)
    {
        _writer = new StreamWriter(path) { NewLine = "\n" };
        var description = new JsonObject
        {
            ["format"] = Format,
            ["etcd_version"] = etcdVersion,
            ["seed"] = seed,
            ["operations"] = operations,
            ["max_txn_ops"] = OperationGenerator.MaxTxnOperations,
            ["max_request_bytes"] = 1_572_864,
        };
        _writer.WriteLine(description.ToJsonString());
    }

    public void Write(GeneratedOperation operation, GatewayResult result)
    {
        var line = new JsonObject
        {
            ["i"] = _index++,
            ["op"] = operation.Name,
            ["request"] = operation.Recorded.DeepClone(),
        };
        if (result.IsError)
        {
            line["error"] = new JsonObject { ["code"] = result.ErrorCode, ["message"] = result.ErrorMessage };
        }
        else
        {
            JsonObject response = (JsonObject)result.Response!.DeepClone();
            RemoveProcessFields(response);
            line["response"] = response;
        }

        _writer.WriteLine(line.ToJsonString());
    }

    private static void RemoveProcessFields(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject obj:
                if (obj["header"] is JsonObject header)
                {
                    foreach (string field in ProcessHeaderFields)
                    {
                        header.Remove(field);
                    }
                }

                foreach (KeyValuePair<string, JsonNode?> child in obj)
                {
                    RemoveProcessFields(child.Value);
                }

                break;
            case JsonArray array:
                foreach (JsonNode? child in array)
                {
                    RemoveProcessFields(child);
                }

                break;
        }
    }

    public void Dispose() => _writer.Dispose();
}
