using EmbeddedRaft.Mvcc.Replication;
using Grpc.Core;
using Etcd = EmbeddedRaft.Samples.EtcdCompatibleServer.Etcdserverpb;

namespace EmbeddedRaft.Samples.EtcdCompatibleServer.Services;

/// <summary>
/// etcd's KV service on one member: writes go through Raft from whichever member receives them
/// (a follower forwards); reads are linearizable unless the request says serializable.
/// </summary>
internal sealed class KvService(EtcdMember member) : Etcd.KV.KVBase
{
    public override async Task<Etcd.RangeResponse> Range(Etcd.RangeRequest request, ServerCallContext context)
    {
        ReadConsistency consistency = request.Serializable ? ReadConsistency.Serializable : ReadConsistency.Linearizable;
        return ProtoMapping.ToProto(await member.Store.RangeAsync(ProtoMapping.ToStore(request), consistency, context.CancellationToken).ConfigureAwait(false));
    }

    public override async Task<Etcd.PutResponse> Put(Etcd.PutRequest request, ServerCallContext context) =>
        ProtoMapping.ToProto(await member.Store.PutAsync(ProtoMapping.ToStore(request), context.CancellationToken).ConfigureAwait(false));

    public override async Task<Etcd.DeleteRangeResponse> DeleteRange(Etcd.DeleteRangeRequest request, ServerCallContext context) =>
        ProtoMapping.ToProto(await member.Store.DeleteRangeAsync(ProtoMapping.ToStore(request), context.CancellationToken).ConfigureAwait(false));

    public override async Task<Etcd.TxnResponse> Txn(Etcd.TxnRequest request, ServerCallContext context) =>
        ProtoMapping.ToProto(await member.Store.TxnAsync(ProtoMapping.ToStore(request), context.CancellationToken).ConfigureAwait(false));

    public override async Task<Etcd.CompactionResponse> Compact(Etcd.CompactionRequest request, ServerCallContext context)
    {
        Mvcc.CompactResponse response = await member.Store.CompactAsync(request.Revision, request.Physical, context.CancellationToken).ConfigureAwait(false);
        return new Etcd.CompactionResponse { Header = ProtoMapping.Header(response.Header) };
    }
}
