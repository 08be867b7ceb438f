using EmbeddedRaft.Mvcc;
using Grpc.Core;
using Etcd = EmbeddedRaft.Samples.EtcdCompatibleServer.Etcdserverpb;

namespace EmbeddedRaft.Samples.EtcdCompatibleServer.Services;

/// <summary>
/// etcd's Lease service. Grants and revocations go through Raft; keep-alives reach the leader from
/// any member (only the leader expires leases). Where etcd answers a missing lease with a value
/// instead of an error (TimeToLive: TTL -1; a keep-alive on the stream: TTL 0), so does this.
/// </summary>
internal sealed class LeaseService(EtcdMember member, IHostApplicationLifetime lifetime) : Etcd.Lease.LeaseBase
{
    public override async Task<Etcd.LeaseGrantResponse> LeaseGrant(Etcd.LeaseGrantRequest request, ServerCallContext context)
    {
        LeaseGrantResponse response = await member.Store.LeaseGrantAsync(request.TTL, request.ID, context.CancellationToken).ConfigureAwait(false);
        return new Etcd.LeaseGrantResponse { Header = ProtoMapping.Header(response.Header), ID = response.Id, TTL = response.TtlSeconds };
    }

    public override async Task<Etcd.LeaseRevokeResponse> LeaseRevoke(Etcd.LeaseRevokeRequest request, ServerCallContext context)
    {
        LeaseRevokeResponse response = await member.Store.LeaseRevokeAsync(request.ID, context.CancellationToken).ConfigureAwait(false);
        return new Etcd.LeaseRevokeResponse { Header = ProtoMapping.Header(response.Header) };
    }

    public override async Task<Etcd.LeaseTimeToLiveResponse> LeaseTimeToLive(Etcd.LeaseTimeToLiveRequest request, ServerCallContext context)
    {
        try
        {
            LeaseTimeToLiveResponse response = await member.Store.LeaseTimeToLiveAsync(request.ID, request.Keys, context.CancellationToken).ConfigureAwait(false);
            var proto = new Etcd.LeaseTimeToLiveResponse
            {
                Header = ProtoMapping.Header(response.Header),
                ID = response.Id,
                TTL = response.TtlSeconds,
                GrantedTTL = response.GrantedTtlSeconds,
            };
            foreach (ReadOnlyMemory<byte> key in response.Keys)
            {
                proto.Keys.Add(Google.Protobuf.UnsafeByteOperations.UnsafeWrap(key));
            }

            return proto;
        }
        catch (MvccException e) when (e.Error == MvccError.LeaseNotFound)
        {
            return new Etcd.LeaseTimeToLiveResponse { Header = member.Header(member.Store.Status.Revision), ID = request.ID, TTL = -1 };
        }
    }

    public override async Task<Etcd.LeaseLeasesResponse> LeaseLeases(Etcd.LeaseLeasesRequest request, ServerCallContext context)
    {
        LeaseLeasesResponse response = await member.Store.LeaseLeasesAsync(context.CancellationToken).ConfigureAwait(false);
        var proto = new Etcd.LeaseLeasesResponse { Header = ProtoMapping.Header(response.Header) };
        foreach (long id in response.Leases)
        {
            proto.Leases.Add(new Etcd.LeaseStatus { ID = id });
        }

        return proto;
    }

    /// <summary>
    /// etcd's keep-alive stream: one response per request, in order; a lease that does not exist
    /// (expired, revoked) answers TTL 0 and the stream goes on; any other failure ends the stream
    /// with etcd's status for it (a leader change: UNAVAILABLE, which etcd's clients answer by opening
    /// a new stream). When the member stops, the stream ends at once with "server stopped" (UNAVAILABLE).
    /// </summary>
    public override async Task LeaseKeepAlive(IAsyncStreamReader<Etcd.LeaseKeepAliveRequest> requestStream, IServerStreamWriter<Etcd.LeaseKeepAliveResponse> responseStream, ServerCallContext context)
    {
        using var ending = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, lifetime.ApplicationStopping);
        try
        {
            await KeepAliveAsync(requestStream, responseStream, ending.Token, context.CancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (lifetime.ApplicationStopping.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
        {
            throw EtcdErrors.Stopped;
        }
    }

    private async Task KeepAliveAsync(IAsyncStreamReader<Etcd.LeaseKeepAliveRequest> requestStream, IServerStreamWriter<Etcd.LeaseKeepAliveResponse> responseStream, CancellationToken cancellationToken, CancellationToken callAborted)
    {
        while (await requestStream.MoveNext(cancellationToken).ConfigureAwait(false))
        {
            long id = requestStream.Current.ID;
            Etcd.LeaseKeepAliveResponse reply;
            try
            {
                LeaseKeepAliveResponse response = await member.Store.LeaseKeepAliveAsync(id, cancellationToken).ConfigureAwait(false);
                reply = new Etcd.LeaseKeepAliveResponse { Header = ProtoMapping.Header(response.Header), ID = response.Id, TTL = response.TtlSeconds };
            }
            catch (MvccException e) when (e.Error == MvccError.LeaseNotFound)
            {
                reply = new Etcd.LeaseKeepAliveResponse { Header = member.Header(member.Store.Status.Revision), ID = id, TTL = 0 };
            }

            // Cancelled only by the call's own abort: a cancelled write aborts the HTTP/2 stream
            // (CANCELLED at the client, final for etcd's clientv3), where a stopping member's stream
            // must end with UNAVAILABLE (WatchSession's writes follow the same rule).
            await responseStream.WriteAsync(reply, callAborted).ConfigureAwait(false);
        }
    }
}
