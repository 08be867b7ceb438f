using Grpc.Core;
using Etcd = EmbeddedRaft.Samples.EtcdCompatibleServer.Etcdserverpb;

namespace EmbeddedRaft.Samples.EtcdCompatibleServer.Services;

/// <summary>
/// etcd's Watch service: one bidirectional stream carries any number of watches, created,
/// cancelled and asked for progress by the client (<see cref="WatchSession"/>). Watches are served
/// from this member's own store, so they live through leader changes.
/// </summary>
internal sealed class WatchService(EtcdMember member, ILogger<WatchService> logger) : Etcd.Watch.WatchBase
{
    public override async Task Watch(IAsyncStreamReader<Etcd.WatchRequest> requestStream, IServerStreamWriter<Etcd.WatchResponse> responseStream, ServerCallContext context)
    {
        await using var session = new WatchSession(member, responseStream, logger, context.CancellationToken);
        await session.RunAsync(requestStream).ConfigureAwait(false);
    }
}
