using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>What a <see cref="ReplicatedStore"/> logs, as source-generated messages.</summary>
internal static partial class ReplicatedStoreLog
{
    [LoggerMessage(Level = LogLevel.Information, Message = "Replicated store member {MemberId} of cluster {ClusterId:x16} started: applied index {Applied}, revision {Revision}, {Members} members in the registry.")]
    public static partial void Started(ILogger logger, ulong memberId, ulong clusterId, ulong applied, long revision, int members);

    [LoggerMessage(Level = LogLevel.Information, Message = "Replicated store member {MemberId}: registry has {Member} from index {Index}.")]
    public static partial void MemberPut(ILogger logger, ulong memberId, MemberInfo member, ulong index);

    [LoggerMessage(Level = LogLevel.Information, Message = "Replicated store member {MemberId}: registry removed member {Removed} at index {Index}.")]
    public static partial void MemberRemoved(ILogger logger, ulong memberId, ulong removed, ulong index);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Replicated store member {MemberId}: could not update the transport's address of peer {PeerId}.")]
    public static partial void PeerAddressFailed(ILogger logger, Exception exception, ulong memberId, ulong peerId);

    [LoggerMessage(Level = LogLevel.Error, Message = "Replicated store member {MemberId}: a background sync of the store failed (the node stops at its next apply).")]
    public static partial void SyncFailed(ILogger logger, Exception exception, ulong memberId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Replicated store member {MemberId}: restored the snapshot at index {Index} (revision {Revision}).")]
    public static partial void Restored(ILogger logger, ulong memberId, ulong index, long revision);

    [LoggerMessage(Level = LogLevel.Information, Message = "Replicated store member {MemberId}: leading; the lessor is primary (every lease's TTL restarted) and expires leases.")]
    public static partial void LessorPromoted(ILogger logger, ulong memberId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Replicated store member {MemberId}: not leading (leader {LeaderId}); the lessor is secondary.")]
    public static partial void LessorDemoted(ILogger logger, ulong memberId, ulong leaderId);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Replicated store member {MemberId}: the revocation of expired lease {LeaseId} did not commit (it is reported again later).")]
    public static partial void ExpiryProposalFailed(ILogger logger, Exception exception, ulong memberId, long leaseId);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Replicated store member {MemberId}: no hash for the check at index {CheckIndex} (revision {Revision}).")]
    public static partial void HashSkipped(ILogger logger, Exception exception, ulong memberId, ulong checkIndex, long revision);

    [LoggerMessage(Level = LogLevel.Error, Message = "Replicated store member {MemberId}: CORRUPTION ALARM — the hash check at index {CheckIndex} (revision {Revision}, compact revision {CompactRevision}) found members disagreeing: {Hashes}. Writes are refused from now on.")]
    public static partial void HashMismatch(ILogger logger, ulong memberId, ulong checkIndex, long revision, long compactRevision, string hashes);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Replicated store member {MemberId}: lease {LeaseId} expired; its revocation applied at index {Index}.")]
    public static partial void LeaseExpireApplied(ILogger logger, ulong memberId, long leaseId, ulong index);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Replicated store member {MemberId}: alarm {Alarms} disarmed by the entry at index {Index}.")]
    public static partial void AlarmDisarmed(ILogger logger, ulong memberId, StoreAlarms alarms, ulong index);
}
