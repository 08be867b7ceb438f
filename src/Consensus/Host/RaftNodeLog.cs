using EmbeddedRaft.Consensus.Messages;
using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Consensus.Host;

/// <summary>What a <see cref="RaftNode{TResult}"/> logs, as source-generated messages (no boxing, nothing evaluated when the level is off).</summary>
internal static partial class RaftNodeLog
{
    [LoggerMessage(Level = LogLevel.Information, Message = "Raft node {NodeId} started: applied index {Applied}, log last index {LastIndex}, term {Term}, configuration {Conf}.")]
    public static partial void Started(ILogger logger, ulong nodeId, ulong applied, ulong lastIndex, ulong term, ConfState conf);

    [LoggerMessage(Level = LogLevel.Critical, Message = "Raft node {NodeId} stopped for good: {Cause}")]
    public static partial void StoppedForGood(ILogger logger, Exception exception, ulong nodeId, string cause);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Raft node {NodeId} rejected {Message}.")]
    public static partial void Rejected(ILogger logger, Exception exception, ulong nodeId, Message message);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Raft node {NodeId}: the transport failed to send {Message}.")]
    public static partial void SendFailed(ILogger logger, Exception exception, ulong nodeId, Message message);

    [LoggerMessage(Level = LogLevel.Information, Message = "Raft node {NodeId} in the last {Ticks} ticks: {Rejected} messages rejected, {FailedSends} sends failed, unreachable reports (peer: count) {Unreachable}.")]
    public static partial void DropSummary(ILogger logger, ulong nodeId, long ticks, int rejected, int failedSends, string unreachable);

    [LoggerMessage(Level = LogLevel.Information, Message = "Raft node {NodeId}: snapshot at index {Index} (term {Term}) saved; log compacted.")]
    public static partial void Compacted(ILogger logger, ulong nodeId, ulong index, ulong term);

    [LoggerMessage(Level = LogLevel.Information, Message = "Raft node {NodeId}: installing snapshot at index {Index} (term {Term}) from the leader.")]
    public static partial void InstallingSnapshot(ILogger logger, ulong nodeId, ulong index, ulong term);

    [LoggerMessage(Level = LogLevel.Information, Message = "Raft node {NodeId}: configuration change {Change} at index {Index}; configuration now {Conf}.")]
    public static partial void ConfChangeApplied(ILogger logger, ulong nodeId, Membership.ConfChange change, ulong index, ConfState conf);

    [LoggerMessage(Level = LogLevel.Information, Message = "Raft node {NodeId} is now {Role} in term {Term}.")]
    public static partial void RoleChanged(ILogger logger, ulong nodeId, StateRole role, ulong term);

    [LoggerMessage(Level = LogLevel.Information, Message = "Raft node {NodeId}: leader is {Leader} in term {Term}.")]
    public static partial void LeaderIs(ILogger logger, ulong nodeId, ulong leader, ulong term);

    [LoggerMessage(Level = LogLevel.Information, Message = "Raft node {NodeId}: no leader in term {Term}.")]
    public static partial void NoLeader(ILogger logger, ulong nodeId, ulong term);

    [LoggerMessage(Level = LogLevel.Information, Message = "Raft node {NodeId}: snapshot at index {Index} sent to {Peer}.")]
    public static partial void SnapshotSent(ILogger logger, ulong nodeId, ulong index, ulong peer);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Raft node {NodeId}: sending the snapshot to {Peer} failed; replication to it resumes by probing.")]
    public static partial void SnapshotSendFailed(ILogger logger, Exception exception, ulong nodeId, ulong peer);

    [LoggerMessage(Level = LogLevel.Information, Message = "Raft node {NodeId}: state machine restored from the snapshot at index {Index}.")]
    public static partial void Restored(ILogger logger, ulong nodeId, ulong index);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Raft node {NodeId}: a cancellation callback threw while stopping.")]
    public static partial void CancelCallbackFailed(ILogger logger, Exception exception, ulong nodeId);
}
