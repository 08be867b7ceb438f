using EmbeddedRaft.Consensus;
using EmbeddedRaft.Consensus.Host;

namespace EmbeddedRaft.Mvcc.Replication;

/// <content>
/// What etcd's Maintenance and Cluster services offer beyond the data (issue 19): backups (etcd's
/// snapshot), disarming alarms through the log, a member's peer URLs changed, and the leader's
/// check that a learner is in sync before it is promoted.
/// </content>
public sealed partial class ReplicatedStore
{
    /// <summary>
    /// etcd's rule for promoting a learner (etcdserver's <c>readyPercent</c>): its match index must be
    /// at least this fraction of the leader's own.
    /// </summary>
    internal const double LearnerReadyFraction = 0.9;

    /// <summary>
    /// Makes a consistent, point-in-time copy of THIS member's store (etcd's <c>Maintenance.Snapshot</c>:
    /// local, not linearizable): a B+tree file holding exactly the state as of the last applied Raft
    /// entry — the data, leases, compaction mark, member registry and consistent index. Writes go on
    /// meanwhile and are not in it. Stream it with <see cref="StoreBackup.ReadChunksAsync"/> or
    /// <see cref="StoreBackup.CopyToAsync"/>; dispose it to delete its file.
    /// </summary>
    /// <remarks>
    /// The copy is built in the member's store directory (it needs as much free space as the live
    /// data) from one read transaction, which holds back a snapshot restore on this member until the
    /// copy is made. To restore, save the bytes as <c>mvcc.db</c> in an empty directory and open it
    /// with <see cref="MvccStore.Open(string, MvccStoreOptions?)"/>.
    /// </remarks>
    /// <exception cref="Storage.StorageFaultedException">A write or flush of the store failed (now or earlier).</exception>
    /// <exception cref="ObjectDisposedException">The member stopped.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; nothing is left behind.</exception>
    public ValueTask<StoreBackup> CreateBackupAsync(CancellationToken cancellationToken = default) => Mvcc.CreateBackupAsync(cancellationToken);

    /// <summary>
    /// The alarms raised, linearizably: as of a read point the leader confirmed (etcd answers an alarm
    /// listing through Raft), so a disarm that completed anywhere is seen here.
    /// <see cref="Status"/> answers the same without waiting, possibly a little behind.
    /// </summary>
    /// <exception cref="NoLeaderException">No leader confirmed a read point.</exception>
    /// <exception cref="TimeoutException">The leader did not confirm a read point in time.</exception>
    /// <exception cref="NodeStoppedException">The member stopped.</exception>
    public async ValueTask<StoreAlarms> AlarmsAsync(CancellationToken cancellationToken = default)
    {
        await Node.ReadIndexAsync(cancellationToken).ConfigureAwait(ResumeOnScheduler);
        return (StoreAlarms)Volatile.Read(ref _alarms);
    }

    /// <summary>
    /// Clears <paramref name="alarms"/> on every member (etcd's alarm deactivation), through the log,
    /// and returns those that were raised on this member when it applied the change. With
    /// <see cref="StoreAlarms.Corrupt"/> cleared, writes are taken again; the next hash check
    /// (<see cref="ReplicatedStoreOptions.HashCheckInterval"/>) raises it again if the members'
    /// data still differ (as etcd, which does not check before disarming either).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="alarms"/> holds a value that is no alarm.</exception>
    /// <exception cref="NoLeaderException">No leader is known.</exception>
    /// <exception cref="ProposalDroppedException">The proposal was dropped or timed out; repeat the call.</exception>
    /// <exception cref="NodeStoppedException">The member stopped.</exception>
    public async ValueTask<StoreAlarms> DisarmAlarmsAsync(StoreAlarms alarms, CancellationToken cancellationToken = default)
    {
        if ((alarms & ~(StoreAlarms.Corrupt | StoreAlarms.NoSpace)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(alarms), alarms, $"Only {StoreAlarms.Corrupt} and {StoreAlarms.NoSpace} are alarms.");
        }

        var w = new CommandWriter(CommandKind.AlarmDisarm, 16);
        w.WriteUInt64((ulong)alarms);
        return Unwrap<StoreAlarms>(await Node.ProposeAsync(w.Written, cancellationToken).ConfigureAwait(ResumeOnScheduler));
    }

    /// <summary>
    /// Replaces the peer URLs of member <paramref name="id"/> (etcd's <c>MemberUpdate</c>), through
    /// the log, and returns the members once applied here. Every member's TCP transport then sends
    /// to the member's new first peer URL; the member itself must listen there.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="id"/> is not a registered member, or a URL is malformed (the message quotes it), or there is none.</exception>
    /// <exception cref="NoLeaderException">No leader is known.</exception>
    /// <exception cref="ProposalDroppedException">The proposal was dropped or timed out; repeat the call.</exception>
    /// <exception cref="NodeStoppedException">The member stopped.</exception>
    public async ValueTask<IReadOnlyList<MemberInfo>> UpdateMemberAsync(ulong id, IReadOnlyList<string> peerUrls, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfZero(id);
        ArgumentNullException.ThrowIfNull(peerUrls);
        await Node.ReadIndexAsync(cancellationToken).ConfigureAwait(ResumeOnScheduler);
        if (!_registry.Members.TryGetValue(id, out var member))
        {
            throw new ArgumentException($"Member {id} is not registered.", nameof(id));
        }

        var updated = member with { PeerUrls = [.. peerUrls] };
        MemberRegistry.Check(updated, nameof(peerUrls));
        ThrowIfRefused(await Node.ProposeAsync(CommandCodec.EncodeMemberPut(updated), cancellationToken).ConfigureAwait(ResumeOnScheduler));
        return _registry.List();
    }

    /// <summary>
    /// etcd's <c>isLearnerReady</c>: only the leader knows how far a learner's log is, so only the
    /// leader may promote one, and only when the learner's match index is at least
    /// <see cref="LearnerReadyFraction"/> of the leader's (a learner promoted while far behind would
    /// be a voter that cannot vote usefully, and may cost the cluster its quorum).
    /// </summary>
    /// <exception cref="MvccException"><see cref="MvccError.NotLeader"/> on a follower; <see cref="MvccError.LearnerNotReady"/> when the learner is behind.</exception>
    private void ThrowIfLearnerNotReady(ulong id)
    {
        var raft = Node.Status.Raft;
        if (raft.SoftState.Lead != MemberId || !raft.Progress.TryGetValue(MemberId, out var leader))
        {
            throw new MvccException(MvccError.NotLeader, $"{MvccException.MessageOf(MvccError.NotLeader)} (member {MemberId:x} cannot tell whether learner {id:x} is in sync; the leader is {raft.SoftState.Lead:x})");
        }

        // No progress for it: the leader's status (refreshed every tick) does not show the learner yet.
        // Not known to be in sync, so not ready; a retry a tick later finds it.
        if (!raft.Progress.TryGetValue(id, out var learner))
        {
            throw new MvccException(MvccError.LearnerNotReady, $"{MvccException.MessageOf(MvccError.LearnerNotReady)} (the leader has no progress for learner {id:x} yet)");
        }

        if (learner.Match < leader.Match * LearnerReadyFraction)
        {
            throw new MvccException(MvccError.LearnerNotReady, $"{MvccException.MessageOf(MvccError.LearnerNotReady)} (learner {id:x} has index {learner.Match}, the leader {leader.Match})");
        }
    }

    /// <summary>Applies a disarm on this member: clears the alarms and answers which of them were raised.</summary>
    private StoreAlarms ApplyAlarmDisarm(ReadOnlySpan<byte> command, ulong index)
    {
        var r = CommandCodec.Body(command, CommandKind.AlarmDisarm);
        var alarms = (StoreAlarms)r.ReadUInt64("alarms");
        r.ExpectEnd("an alarm disarm");
        int before;
        do
        {
            before = Volatile.Read(ref _alarms);
        }
        while (Interlocked.CompareExchange(ref _alarms, before & ~(int)alarms, before) != before);

        var cleared = (StoreAlarms)before & alarms;
        if (cleared != StoreAlarms.None)
        {
            ReplicatedStoreLog.AlarmDisarmed(_logger, MemberId, cleared, index);
        }

        return cleared;
    }
}
