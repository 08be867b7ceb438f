using Grpc.Core;

namespace EmbeddedRaft.Samples.EtcdCompatibleServer;

/// <summary>The server's log messages (source-generated, allocation-free when the level is off).</summary>
internal static partial class EtcdServerLog
{
    [LoggerMessage(1, LogLevel.Debug, "{Method} answered {Code}")]
    public static partial void CallFailed(ILogger logger, string method, StatusCode code, Exception exception);

    [LoggerMessage(2, LogLevel.Information, "Member {Name} ({MemberId:x}) serves the etcd v3 API on {ClientUrl} (peer {PeerUrl})")]
    public static partial void Serving(ILogger logger, string name, ulong memberId, string clientUrl, string peerUrl);

    [LoggerMessage(3, LogLevel.Warning, "Watch stream ended: {Reason}")]
    public static partial void WatchStreamFailed(ILogger logger, string reason, Exception exception);
}
