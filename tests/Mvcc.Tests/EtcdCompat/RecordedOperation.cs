using System.Text.Json.Nodes;

namespace EmbeddedRaft.Mvcc.Tests.EtcdCompat;

/// <summary>
/// One request of a recording and what etcd answered: <see cref="Response"/> (etcd's gateway JSON,
/// header without the process fields) or, when etcd refused it, <see cref="ErrorCode"/> (gRPC status)
/// and <see cref="ErrorMessage"/> (etcd's message).
/// </summary>
internal sealed record RecordedOperation(int Index, string Op, JsonObject Request, JsonObject? Response, int ErrorCode, string? ErrorMessage)
{
    public bool IsError => Response is null;

    public override string ToString() => $"#{Index} {Op} {Request.ToJsonString()}";
}
