using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;

namespace EmbeddedRaft.EtcdRecorder;

/// <summary>
/// etcd's JSON gRPC gateway (POST /v3/kv/range, put, deleterange, txn, compaction): the request and
/// response bodies are the protobuf messages in proto3 JSON, keys and values base64, int64s as strings,
/// fields at their default value left out. An error comes back as {"code": grpc-code, "message": ...}.
/// </summary>
internal sealed class EtcdGateway : IDisposable
{
    private readonly HttpClient _http;

    public EtcdGateway(Uri endpoint)
    {
        _http = new HttpClient { BaseAddress = endpoint, Timeout = TimeSpan.FromSeconds(30) };
    }

    /// <summary>Posts <paramref name="request"/> to /v3/<paramref name="path"/>.</summary>
    public async Task<GatewayResult> PostAsync(string path, JsonObject request)
    {
        using var content = new StringContent(request.ToJsonString(), Encoding.UTF8, "application/json");
        using HttpResponseMessage response = await _http.PostAsync(new Uri($"/v3/{path}", UriKind.Relative), content).ConfigureAwait(false);
        JsonObject body = await response.Content.ReadFromJsonAsync<JsonObject>().ConfigureAwait(false)
            ?? throw new InvalidOperationException($"etcd answered /v3/{path} with an empty body (HTTP {(int)response.StatusCode}).");
        if (response.IsSuccessStatusCode)
        {
            return new GatewayResult(body, 0, null);
        }

        int code = body["code"]?.GetValue<int>() ?? throw new InvalidOperationException($"etcd's error for /v3/{path} has no code: {body.ToJsonString()}");
        string message = body["message"]?.GetValue<string>() ?? "";
        return new GatewayResult(null, code, message);
    }

    /// <summary>The server version etcd reports at GET /version.</summary>
    public async Task<string> ServerVersionAsync()
    {
        JsonObject body = await _http.GetFromJsonAsync<JsonObject>(new Uri("/version", UriKind.Relative)).ConfigureAwait(false)
            ?? throw new InvalidOperationException("etcd's /version is empty.");
        return body["etcdserver"]?.GetValue<string>() ?? throw new InvalidOperationException($"etcd's /version names no server: {body.ToJsonString()}");
    }

    /// <summary>Polls a range of one key until etcd answers it; throws <see cref="TimeoutException"/>
    /// after <paramref name="limit"/>, <see cref="InvalidOperationException"/> once <paramref name="hasExited"/> says etcd is gone.</summary>
    public static async Task WaitUntilServingAsync(Uri endpoint, TimeSpan limit, Func<bool> hasExited)
    {
        using var gateway = new EtcdGateway(endpoint);
        DateTime deadline = DateTime.UtcNow + limit;
        while (true)
        {
            try
            {
                GatewayResult result = await gateway.PostAsync("kv/range", new JsonObject { ["key"] = "AA==" }).ConfigureAwait(false);
                if (!result.IsError)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }

            if (hasExited())
            {
                throw new InvalidOperationException($"etcd exited before serving on {endpoint}.");
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"etcd at {endpoint} did not answer within {limit.TotalSeconds} s.");
            }

            await Task.Delay(100).ConfigureAwait(false);
        }
    }

    public void Dispose() => _http.Dispose();
}
