using System.Text.Json.Nodes;

namespace EmbeddedRaft.EtcdRecorder;

/// <summary>
/// One request of a sequence: the gateway path it goes to ("kv/put", ...), the body sent, and the
/// body written to the recording. The two differ only for an oversized value, which the recording
/// stores as <c>"value_fill": {"byte": b, "length": n}</c> instead of megabytes of base64.
/// </summary>
internal sealed record GeneratedOperation(string Path, JsonObject Request, JsonObject Recorded)
{
    /// <summary>The operation's name in the recording: the last segment of the path.</summary>
    public string Name => Path[(Path.LastIndexOf('/') + 1)..];
}
