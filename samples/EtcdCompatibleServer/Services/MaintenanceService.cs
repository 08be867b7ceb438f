using EmbeddedRaft.Mvcc;
using EmbeddedRaft.Mvcc.Replication;
using Grpc.Core;
using Etcd = EmbeddedRaft.Samples.EtcdCompatibleServer.Etcdserverpb;

namespace EmbeddedRaft.Samples.EtcdCompatibleServer.Services;

/// <summary>
/// etcd's Maintenance service: Status, Hash, HashKV, Alarm (listing) and MoveLeader. Not offered
/// (UNIMPLEMENTED): Defragment (the store's B+tree reuses freed pages and has no online
/// defragmentation), Snapshot (the store has no public call that streams a copy of its data),
/// and raising or clearing alarms by hand (the store raises and clears its own).
/// </summary>
internal sealed class MaintenanceService(EtcdMember member) : Etcd.Maintenance.MaintenanceBase
{
    /// <summary>
    /// The etcd release whose API and behaviour this server mirrors (the one its etcdctl
    /// recordings come from); etcd's clients read it to decide which calls a server has.
    /// </summary>
    public const string EtcdVersion = "3.4.23";

    public override Task<Etcd.StatusResponse> Status(Etcd.StatusRequest request, ServerCallContext context)
    {
        ReplicatedStoreStatus status = member.Store.Status;
        var response = new Etcd.StatusResponse
        {
            Header = member.Header(status.Revision, status.RaftTerm),
            Version = EtcdVersion,
            DbSize = status.DbSizeBytes,
            // The B+tree does not tell used from free pages cheaply: report the file's size.
            DbSizeInUse = status.DbSizeBytes,
            Leader = status.LeaderId,
            RaftIndex = status.RaftIndex,
            RaftTerm = status.RaftTerm,
            RaftAppliedIndex = status.RaftAppliedIndex,
            IsLearner = status.IsLearner,
        };
        if (status.LeaderId == 0)
        {
            response.Errors.Add("etcdserver: no leader");
        }

        foreach (Etcd.AlarmMember alarm in Alarms(status))
        {
            // etcd's text for an alarm (its protobuf's String()).
            response.Errors.Add($"memberID:{alarm.MemberID} alarm:{alarm.Alarm.ToString().ToUpperInvariant()} ");
        }

        return Task.FromResult(response);
    }

    /// <summary>
    /// etcd's Hash covers its whole backend file; this store's file layout is its own, so Hash
    /// answers the hash of the key-value history at the newest revision (what HashKV(0) answers):
    /// like etcd's, it is equal on members that hold the same data.
    /// </summary>
    public override async Task<Etcd.HashResponse> Hash(Etcd.HashRequest request, ServerCallContext context)
    {
        HashKVResponse hash = await member.Store.HashKVAsync(0, context.CancellationToken).ConfigureAwait(false);
        return new Etcd.HashResponse { Header = ProtoMapping.Header(hash.Header), Hash = hash.Hash };
    }

    public override async Task<Etcd.HashKVResponse> HashKV(Etcd.HashKVRequest request, ServerCallContext context)
    {
        HashKVResponse hash = await member.Store.HashKVAsync(request.Revision, context.CancellationToken).ConfigureAwait(false);
        return new Etcd.HashKVResponse { Header = ProtoMapping.Header(hash.Header), Hash = hash.Hash, CompactRevision = hash.CompactRevision };
    }

    public override Task<Etcd.AlarmResponse> Alarm(Etcd.AlarmRequest request, ServerCallContext context)
    {
        if (request.Action != Etcd.AlarmRequest.Types.AlarmAction.Get)
        {
            throw EtcdErrors.Rpc(StatusCode.Unimplemented, "etcdserver: alarms are raised and cleared by the store itself; only listing them is offered");
        }

        ReplicatedStoreStatus status = member.Store.Status;
        var response = new Etcd.AlarmResponse { Header = member.Header(status.Revision, status.RaftTerm) };
        response.Alarms.AddRange(Alarms(status).Where(a =>
            (request.MemberID == 0 || a.MemberID == request.MemberID) && (request.Alarm == Etcd.AlarmType.None || a.Alarm == request.Alarm)));
        return Task.FromResult(response);
    }

    /// <summary>etcd's MoveLeader: only the leader hands its leadership over, and only to a voter.</summary>
    public override async Task<Etcd.MoveLeaderResponse> MoveLeader(Etcd.MoveLeaderRequest request, ServerCallContext context)
    {
        ReplicatedStoreStatus status = member.Store.Status;
        if (status.LeaderId != member.Store.MemberId)
        {
            throw EtcdErrors.NotLeader;
        }

        IReadOnlyList<MemberInfo> members = await member.Store.MemberListAsync(context.CancellationToken).ConfigureAwait(false);
        if (!members.Any(m => m.Id == request.TargetID && !m.IsLearner))
        {
            throw EtcdErrors.BadLeaderTransferee;
        }

        await member.Store.TransferLeadershipAsync(request.TargetID, context.CancellationToken).ConfigureAwait(false);
        return new Etcd.MoveLeaderResponse { Header = member.Header(member.Store.Status.Revision) };
    }

    /// <summary>This member's raised alarms, as etcd lists them (one entry per member and alarm).</summary>
    private IEnumerable<Etcd.AlarmMember> Alarms(ReplicatedStoreStatus status)
    {
        if (status.Alarms.HasFlag(StoreAlarms.NoSpace))
        {
            yield return new Etcd.AlarmMember { MemberID = member.Store.MemberId, Alarm = Etcd.AlarmType.Nospace };
        }

        if (status.Alarms.HasFlag(StoreAlarms.Corrupt))
        {
            yield return new Etcd.AlarmMember { MemberID = member.Store.MemberId, Alarm = Etcd.AlarmType.Corrupt };
        }
    }
}
