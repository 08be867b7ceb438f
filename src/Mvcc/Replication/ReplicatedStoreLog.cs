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
}
