using System.Security.Cryptography;
using EmbeddedRaft.Consensus;
using EmbeddedRaft.Mvcc;
using EmbeddedRaft.Mvcc.Replication;
using Grpc.Core;
using Grpc.Net.Client;
using Etcd = EmbeddedRaft.Samples.EtcdCompatibleServer.Etcdserverpb;

namespace EmbeddedRaft.Samples.EtcdCompatibleServer.Services;

/// <summary>
/// etcd's Cluster service over the store's replicated member registry. Peer URLs are shown as
/// etcd shows them (http:// and https://) and stored as the store's transport takes them
/// (tcp:// and tls://; see <see cref="PeerUrls"/>). MemberPromote on a follower is forwarded to the
/// leader's endpoint, as etcd forwards it: only the leader knows whether the learner is in sync.
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

    /// <summary>
    /// Promotes a learner as etcd does: on the leader, and only once the learner is in sync
    /// (FAILED_PRECONDITION "can only promote a learner member which is in sync with leader"
    /// otherwise). A follower forwards the call to the leader's client URL (etcd forwards it to the
    /// leader over its peer connection).
    /// </summary>
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
        catch (MvccException e) when (e.Error == MvccError.NotLeader)
        {
            return await ForwardToLeaderAsync(request, context).ConfigureAwait(false);
        }
        catch (ConfChangeRejectedException)
        {
            // Raft refuses the change (another one is pending, the learner left the configuration).
            throw EtcdErrors.LearnerNotReady;
        }

        var response = new Etcd.MemberPromoteResponse { Header = member.Header(member.Store.Status.Revision) };
        response.Members.AddRange(members.Select(ToProto));
        return response;
    }

    /// <summary>etcd's MemberUpdate: replaces a member's peer URLs (valid, and used by no other member).</summary>
    public override async Task<Etcd.MemberUpdateResponse> MemberUpdate(Etcd.MemberUpdateRequest request, ServerCallContext context)
    {
        await RequireMemberAsync(request.ID, context).ConfigureAwait(false);
        if (request.PeerURLs.Count == 0 || !request.PeerURLs.All(PeerUrls.IsValid))
        {
            throw EtcdErrors.MemberBadUrls;
        }

        string[] peerUrls = [.. request.PeerURLs.Select(PeerUrls.ToStore)];
        IReadOnlyList<MemberInfo> before = await member.Store.MemberListAsync(context.CancellationToken).ConfigureAwait(false);
        if (before.Any(m => m.Id != request.ID && m.PeerUrls.Intersect(peerUrls, StringComparer.OrdinalIgnoreCase).Any()))
        {
            throw EtcdErrors.PeerUrlExists;
        }

        IReadOnlyList<MemberInfo> members;
        try
        {
            members = await member.Store.UpdateMemberAsync(request.ID, peerUrls, context.CancellationToken).ConfigureAwait(false);
        }
        catch (ArgumentException)
        {
            throw EtcdErrors.MemberBadUrls;
        }

        var response = new Etcd.MemberUpdateResponse { Header = member.Header(member.Store.Status.Revision) };
        response.Members.AddRange(members.Select(ToProto));
        return response;
    }

    /// <summary>Sends <paramref name="request"/> to the leader's first client URL and answers what it answered.</summary>
    private async Task<Etcd.MemberPromoteResponse> ForwardToLeaderAsync(Etcd.MemberPromoteRequest request, ServerCallContext context)
    {
        ulong leaderId = member.Store.Status.LeaderId;
        IReadOnlyList<MemberInfo> members = await member.Store.MemberListAsync(context.CancellationToken).ConfigureAwait(false);
        MemberInfo? leader = members.FirstOrDefault(m => m.Id == leaderId && m.Id != member.Store.MemberId);
        if (leader is null || leader.ClientUrls.Count == 0)
        {
            // No leader known (or it is this member again after an election): the client retries.
            throw EtcdErrors.LeaderChanged;
        }

        using GrpcChannel channel = GrpcChannel.ForAddress(leader.ClientUrls[0], new GrpcChannelOptions { HttpHandler = member.PeerHandler() });
        try
        {
            return await new Etcd.Cluster.ClusterClient(channel).MemberPromoteAsync(request, cancellationToken: context.CancellationToken).ConfigureAwait(false);
        }
        catch (RpcException e)
        {
            // The leader's answer, as it gave it (etcd's status and message).
            throw new RpcException(e.Status, e.Status.Detail);
        }
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
