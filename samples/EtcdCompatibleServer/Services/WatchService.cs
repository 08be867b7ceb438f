using Grpc.Core;
using Etcd = EmbeddedRaft.Samples.EtcdCompatibleServer.Etcdserverpb;

namespace EmbeddedRaft.Samples.EtcdCompatibleServer.Services;

/// <summary>
/// etcd's Watch service: one bidirectional stream carries any number of watches, created,
/// cancelled and asked for progress by the client (<see cref="WatchSession"/>). Watches are served
/// from this member's own store, so they live through leader changes. When the member stops, open
/// streams end at once with etcd's "server stopped" (UNAVAILABLE), on which etcd's clients resume
/// their watches on another member (else the endpoint's shutdown would wait for them to end).
/// </summary>
internal sealed class WatchService(EtcdMember member, ILogger<WatchService> logger, IHostApplicationLifetime lifetime) : Etcd.Watch.WatchBase
{
    public override async Task Watch(IAsyncStreamReader<Etcd.WatchRequest> requestStream, IServerStreamWriter<Etcd.WatchResponse> responseStream, ServerCallContext context)
    {
        using var ending = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, lifetime.ApplicationStopping);
        await using (var session = new WatchSession(member, responseStream, logger, ending.Token, context.CancellationToken))
        {
            await session.RunAsync(requestStream).ConfigureAwait(false);
        }

        if (lifetime.ApplicationStopping.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
        {
            throw EtcdErrors.Stopped;
        }
    }
}
