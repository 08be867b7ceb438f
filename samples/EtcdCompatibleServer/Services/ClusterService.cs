using System.Security.Cryptography;
using EmbeddedRaft.Consensus;
using EmbeddedRaft.Mvcc.Replication;
using Grpc.Core;
using Etcd = EmbeddedRaft.Samples.EtcdCompatibleServer.Etcdserverpb;

namespace EmbeddedRaft.Samples.EtcdCompatibleServer.Services;

/// <summary>
/// etcd's Cluster service over the store's replicated member registry. Peer URLs are shown as
/// etcd shows them (http:// and https://) and stored as the store's transport takes them
/// (tcp:// and tls://; see <see cref="PeerUrls"/>). MemberUpdate is not offered (UNIMPLEMENTED):
/// the store has no call to change a member's URLs.
/// </summary>
internal sealed class ClusterService(EtcdMember member) : Etcd.Cluster.ClusterBase
{
    public override async Task<Etcd.MemberListResponse> MemberList(Etcd.MemberListRequest request, ServerCallContext context)
    {
        IReadOnlyList<MemberInfo> members = await member.Store.MemberListAsync(context.CancellationToken).ConfigureAwait(false);
        var response = new Etcd.MemberListResponse { Header = member.Header(member.Store.Status.Revision) };
        response.Members.AddRange(members.Select(ToProto));
        return response;
    }

    /// <summary>
    /// Adds a member the way etcd does: it gets a new random id and no name until it starts
    /// (etcdctl prints the environment to start it with); its peer URLs must be valid and unused.
    /// </summary>
    public override async Task<Etcd.MemberAddResponse> MemberAdd(Etcd.MemberAddRequest request, ServerCallContext context)
    {
        if (request.PeerURLs.Count == 0 || !request.PeerURLs.All(PeerUrls.IsValid))
        {
            throw EtcdErrors.MemberBadUrls;
        }

        string[] peerUrls = [.. request.PeerURLs.Select(PeerUrls.ToStore)];
        IReadOnlyList<MemberInfo> before = await member.Store.MemberListAsync(context.CancellationToken).ConfigureAwait(false);
        if (before.Any(m => m.PeerUrls.Intersect(peerUrls, StringComparer.OrdinalIgnoreCase).Any()))
        {
            throw EtcdErrors.PeerUrlExists;
        }

        ulong id = NewMemberId(before);
        var added = new MemberInfo(id, string.Empty, peerUrls, [], request.IsLearner);
        IReadOnlyList<MemberInfo> members;
        try
        {
            members = await member.Store.AddMemberAsync(added, context.CancellationToken).ConfigureAwait(false);
        }
        catch (ArgumentException)
        {
            throw EtcdErrors.MemberBadUrls;
        }

        var response = new Etcd.MemberAddResponse { Header = member.Header(member.Store.Status.Revision), Member = ToProto(added) };
        response.Members.AddRange(members.Select(ToProto));
        return response;
    }

    public override async Task<Etcd.MemberRemoveResponse> MemberRemove(Etcd.MemberRemoveRequest request, ServerCallContext context)
    {
        await RequireMemberAsync(request.ID, context).ConfigureAwait(false);
        IReadOnlyList<MemberInfo> members = await member.Store.RemoveMemberAsync(request.ID, context.CancellationToken).ConfigureAwait(false);
        var response = new Etcd.MemberRemoveResponse { Header = member.Header(member.Store.Status.Revision) };
        response.Members.AddRange(members.Select(ToProto));
        return response;
    }

    public override async Task<Etcd.MemberPromoteResponse> MemberPromote(Etcd.MemberPromoteRequest request, ServerCallContext context)
    {
        MemberInfo target = await RequireMemberAsync(request.ID, context).ConfigureAwait(false);
        if (!target.IsLearner)
        {
            throw EtcdErrors.MemberNotLearner;
        }

        IReadOnlyList<MemberInfo> members;
        try
        {
            members = await member.Store.PromoteMemberAsync(request.ID, context.CancellationToken).ConfigureAwait(false);
        }
        catch (ConfChangeRejectedException)
        {
            // Raft refuses to promote a learner that has not caught up with the leader's log.
            throw EtcdErrors.LearnerNotReady;
        }

        var response = new Etcd.MemberPromoteResponse { Header = member.Header(member.Store.Status.Revision) };
        response.Members.AddRange(members.Select(ToProto));
        return response;
    }

    private async Task<MemberInfo> RequireMemberAsync(ulong id, ServerCallContext context)
    {
        IReadOnlyList<MemberInfo> members = await member.Store.MemberListAsync(context.CancellationToken).ConfigureAwait(false);
        return members.FirstOrDefault(m => m.Id == id) ?? throw EtcdErrors.MemberNotFound;
    }

    private static ulong NewMemberId(IReadOnlyList<MemberInfo> members)
    {
        while (true)
        {
            ulong id = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(sizeof(ulong)));
            if (id != 0 && members.All(m => m.Id != id))
            {
                return id;
            }
        }
    }

    internal static Etcd.Member ToProto(MemberInfo info)
    {
        var proto = new Etcd.Member { ID = info.Id, Name = info.Name, IsLearner = info.IsLearner };
        proto.PeerURLs.AddRange(info.PeerUrls.Select(PeerUrls.ToEtcd));
        proto.ClientURLs.AddRange(info.ClientUrls);
        return proto;
    }
}
