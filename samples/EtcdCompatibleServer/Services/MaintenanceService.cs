using System.Security.Cryptography;
using EmbeddedRaft.Mvcc;
using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.Storage;
using Google.Protobuf;
using Grpc.Core;
using Etcd = EmbeddedRaft.Samples.EtcdCompatibleServer.Etcdserverpb;

namespace EmbeddedRaft.Samples.EtcdCompatibleServer.Services;

/// <summary>
/// etcd's Maintenance service: Status, Hash, HashKV, Alarm (list and disarm), MoveLeader and the
/// Snapshot stream (the member's store as a B+tree file, in etcd's framing: 32 KiB blobs with the
/// bytes remaining, then the SHA-256). Not offered (UNIMPLEMENTED, with the reason): Defragment
/// (the store's B+tree reuses freed pages but cannot shrink its file online) and raising alarms by
/// hand (the store raises its own).
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

        foreach (Etcd.AlarmMember alarm in Alarms(status.Alarms))
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

    /// <summary>
    /// etcd's Alarm: GET lists this member's raised alarms (a member raises the corruption alarm
    /// when it applies disagreeing hash reports, so every member that applied them lists it);
    /// DEACTIVATE clears an alarm on every member through the log, answering the entries it cleared
    /// (none when the alarm was not raised, as etcd). ACTIVATE is not offered: the store raises its own.
    /// </summary>
    public override async Task<Etcd.AlarmResponse> Alarm(Etcd.AlarmRequest request, ServerCallContext context)
    {
        switch (request.Action)
        {
            case Etcd.AlarmRequest.Types.AlarmAction.Get:
            {
                // Linearizable, as etcd's (it answers a listing through Raft): a disarm that completed
                // on any member is not listed here afterwards.
                StoreAlarms raised = await member.Store.AlarmsAsync(context.CancellationToken).ConfigureAwait(false);
                ReplicatedStoreStatus status = member.Store.Status;
                var response = new Etcd.AlarmResponse { Header = member.Header(status.Revision, status.RaftTerm) };
                response.Alarms.AddRange(Alarms(raised).Where(a =>
                    (request.MemberID == 0 || a.MemberID == request.MemberID) && (request.Alarm == Etcd.AlarmType.None || a.Alarm == request.Alarm)));
                return response;
            }

            case Etcd.AlarmRequest.Types.AlarmAction.Deactivate:
            {
                // etcd deactivates one (member, alarm) entry; this store's alarms are the cluster's
                // (raised on every member alike), so an entry of this member clears the alarm everywhere.
                StoreAlarms alarm = request.Alarm switch
                {
                    Etcd.AlarmType.Corrupt => StoreAlarms.Corrupt,
                    Etcd.AlarmType.Nospace => StoreAlarms.NoSpace,
                    _ => StoreAlarms.None,
                };
                var response = new Etcd.AlarmResponse();
                if (alarm != StoreAlarms.None && (request.MemberID == 0 || request.MemberID == member.Store.MemberId))
                {
                    StoreAlarms cleared = await member.Store.DisarmAlarmsAsync(alarm, context.CancellationToken).ConfigureAwait(false);
                    if (cleared != StoreAlarms.None)
                    {
                        response.Alarms.Add(new Etcd.AlarmMember { MemberID = member.Store.MemberId, Alarm = request.Alarm });
                    }
                }

                ReplicatedStoreStatus status = member.Store.Status;
                response.Header = member.Header(status.Revision, status.RaftTerm);
                return response;
            }

            default:
                throw EtcdErrors.Rpc(StatusCode.Unimplemented, "etcdserver: alarms are raised by the store itself; only listing and deactivating them is offered");
        }
    }

    /// <summary>
    /// etcd's Snapshot stream: a consistent copy of this member's store (a B+tree file, this store's
    /// format as etcd's is bbolt's), sent in 32 KiB blobs each carrying the bytes still to come,
    /// then one blob holding the SHA-256 of everything sent (remaining 0), which etcdctl checks: the
    /// file's length is a whole number of pages, so length mod 512 is 0 and etcdctl finds the 32-byte
    /// checksum after it.
    /// </summary>
    public override async Task Snapshot(Etcd.SnapshotRequest request, IServerStreamWriter<Etcd.SnapshotResponse> responseStream, ServerCallContext context)
    {
        await using StoreBackup backup = await member.Store.CreateBackupAsync(context.CancellationToken).ConfigureAwait(false);
        if (backup.SizeBytes % 512 != 0)
        {
            throw new InvariantViolationException($"The store's backup is {backup.SizeBytes} bytes, not a multiple of 512: etcdctl would not find its checksum.");
        }

        using var sha256 = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long sent = 0;
        await foreach (ReadOnlyMemory<byte> chunk in backup.ReadChunksAsync(StoreBackup.DefaultChunkSizeBytes, context.CancellationToken).ConfigureAwait(false))
        {
            sent += chunk.Length;
            sha256.AppendData(chunk.Span);
            await responseStream.WriteAsync(new Etcd.SnapshotResponse { RemainingBytes = (ulong)(backup.SizeBytes - sent), Blob = ByteString.CopyFrom(chunk.Span) }, context.CancellationToken).ConfigureAwait(false);
        }

        // The backup re-hashed its bytes as they were read (it throws above on a mismatch); what was
        // sent must be what it hashed.
        byte[] digest = sha256.GetHashAndReset();
        if (sent != backup.SizeBytes || !digest.AsSpan().SequenceEqual(backup.Sha256.Span))
        {
            throw new InvariantViolationException($"Sent {sent} of {backup.SizeBytes} backup bytes, or bytes that do not hash to the backup's SHA-256.");
        }

        await responseStream.WriteAsync(new Etcd.SnapshotResponse { RemainingBytes = 0, Blob = ByteString.CopyFrom(digest) }, context.CancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Not offered: etcd's Defragment rewrites its bbolt file without the free pages. This store's
    /// B+tree reuses free pages but has no online way to shrink its file (answering OK would claim a
    /// space reclaim that did not happen).
    /// </summary>
    public override Task<Etcd.DefragmentResponse> Defragment(Etcd.DefragmentRequest request, ServerCallContext context) =>
        throw EtcdErrors.Rpc(StatusCode.Unimplemented, "etcdserver: defragment is not supported by this server: its B+tree reuses freed pages but cannot shrink its file online");

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
    private IEnumerable<Etcd.AlarmMember> Alarms(StoreAlarms alarms)
    {
        if (alarms.HasFlag(StoreAlarms.NoSpace))
        {
            yield return new Etcd.AlarmMember { MemberID = member.Store.MemberId, Alarm = Etcd.AlarmType.Nospace };
        }

        if (alarms.HasFlag(StoreAlarms.Corrupt))
        {
            yield return new Etcd.AlarmMember { MemberID = member.Store.MemberId, Alarm = Etcd.AlarmType.Corrupt };
        }
    }
}
