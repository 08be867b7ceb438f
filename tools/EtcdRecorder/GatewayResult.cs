using System.Text.Json.Nodes;

namespace EmbeddedRaft.EtcdRecorder;

/// <summary>
/// etcd's answer to one request: the response body, or the gRPC status code and message of the
/// error it returned (exactly one of the two is set).
/// </summary>
internal sealed record GatewayResult(JsonObject? Response, int ErrorCode, string? ErrorMessage)
{
    public bool IsError => Response is null;
}
