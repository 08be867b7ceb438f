using EmbeddedRaft.Consensus;
using EmbeddedRaft.Consensus.Host;
using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Mvcc.Replication;

/// <content>
/// Leases under Raft (docs/architecture.md, "Replicated leases"). Grants, revocations and
/// keep-alives are log entries, applied by every member in log order; only the leader decides
/// expiry, on its own clock, and acts on it only by proposing revocations, so a partitioned old
/// leader — whose proposals never commit — cannot revoke anything. Every member's lessor keeps the
/// lease clocks (a keep-alive renews the lease on each member's clock as it applies it), but only
/// the leader's is primary; a member that becomes leader first restarts every lease's TTL
/// (etcd's Promote), so an election never expires leases en masse.
/// </content>
/// <remarks>
/// Why keep-alives go through the log rather than to the leader directly (as etcd's do): the
/// members have no channel besides Raft messages, and an entry reaches the leader from any member
/// (followers forward proposals), renews the lease on every member (so the next leader's view is
/// already current), and is ordered against revocations — a keep-alive applied before the
/// expiry's revocation answers success, one after it answers lease-not-found, on every member
/// alike. The cost is a log entry per keep-alive (batched with everything else).
/// </remarks>
public sealed partial class ReplicatedStore
{
    private readonly object _lessorRoleGate = new();
    private LeaseIdGenerator? _leaseIds;
    private bool _lessorPromoted;
    private bool _leaseWorkStarted;
    private ulong _lastLeaderSeen;

    /// <summary>The clock leases and background checks run on.</summary>
    private TimeProvider Clock => _options.TimeProvider ?? TimeProvider.System;

    /// <summary>
    /// Grants a lease (etcd's <c>LeaseGrant</c>) through the log: every member grants it with the same
    /// id, its TTL starting when each applies it. A TTL below the store's
    /// <see cref="LeaseOptions.MinTtlSeconds"/> is raised to it. Creates no revision.
    /// </summary>
    /// <param name="ttlSeconds">The TTL asked for, in seconds.</param>
    /// <param name="id">The lease id, or 0 for this member to choose one no member will choose.</param>
    /// <param name="cancellationToken">Cancels the wait; the grant may still apply.</param>
    /// <exception cref="MvccException"><see cref="MvccError.LeaseTtlTooLarge"/>, <see cref="MvccError.LeaseExists"/>, or the corruption alarm (<see cref="MvccError.Corrupt"/>). Nothing was granted.</exception>
    /// <exception cref="NoLeaderException">No leader is known.</exception>
    /// <exception cref="ProposalDroppedException">The proposal was dropped or timed out.</exception>
    /// <exception cref="NodeStoppedException">The member stopped.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the grant may still apply.</exception>
    public async ValueTask<LeaseGrantResponse> LeaseGrantAsync(long ttlSeconds, long id = 0, CancellationToken cancellationToken = default)
    {
        if (ttlSeconds > LeaseOptions.MaxTtlSeconds)
        {
            throw new MvccException(MvccError.LeaseTtlTooLarge, $"{MvccException.MessageOf(MvccError.LeaseTtlTooLarge)} ({ttlSeconds} s; the maximum is {LeaseOptions.MaxTtlSeconds} s)");
        }

        CheckWritable(0);
        if (id == 0)
        {
            id = LeaseIds.Next();
        }

        var response = Unwrap<LeaseGrantResponse>(await Node.ProposeAsync(LeaseCommands.EncodeGrant(id, ttlSeconds), cancellationToken).ConfigureAwait(ResumeOnScheduler));
        return new LeaseGrantResponse { Header = Stamp(response.Header), Id = response.Id, TtlSeconds = response.TtlSeconds };
    }

    /// <summary>
    /// Revokes a lease (etcd's <c>LeaseRevoke</c>) through the log: every member deletes the keys
    /// attached to it in one revision and forgets it. Completes once applied on this member.
    /// </summary>
    /// <exception cref="MvccException"><see cref="MvccError.LeaseNotFound"/> (never granted, or already revoked or expired), or the corruption alarm.</exception>
    /// <exception cref="NoLeaderException">No leader is known.</exception>
    /// <exception cref="ProposalDroppedException">The proposal was dropped or timed out.</exception>
    /// <exception cref="NodeStoppedException">The member stopped.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the revocation may still apply.</exception>
    public async ValueTask<LeaseRevokeResponse> LeaseRevokeAsync(long id, CancellationToken cancellationToken = default)
    {
        CheckWritable(0);
        var response = Unwrap<LeaseRevokeResponse>(await Node.ProposeAsync(LeaseCommands.EncodeId(CommandKind.LeaseRevoke, id), cancellationToken).ConfigureAwait(ResumeOnScheduler));
        return new LeaseRevokeResponse { Header = Stamp(response.Header) };
    }

    /// <summary>
    /// Keeps a lease alive (one etcd <c>LeaseKeepAlive</c> round) from any member: the keep-alive is a
    /// log entry, so it reaches the leader and every member renews the lease's full TTL as it
    /// applies it. Answers the granted TTL.
    /// </summary>
    /// <exception cref="MvccException"><see cref="MvccError.LeaseNotFound"/>: no such lease (never granted, revoked, or revoked by the leader's expiry before this entry), or the corruption alarm.</exception>
    /// <exception cref="NoLeaderException">No leader is known.</exception>
    /// <exception cref="ProposalDroppedException">The proposal was dropped or timed out.</exception>
    /// <exception cref="NodeStoppedException">The member stopped.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public async ValueTask<LeaseKeepAliveResponse> LeaseKeepAliveAsync(long id, CancellationToken cancellationToken = default)
    {
        CheckWritable(0);
        var response = Unwrap<LeaseKeepAliveResponse>(await Node.ProposeAsync(LeaseCommands.EncodeId(CommandKind.LeaseKeepAlive, id), cancellationToken).ConfigureAwait(ResumeOnScheduler));
        return new LeaseKeepAliveResponse { Header = Stamp(response.Header), Id = response.Id, TtlSeconds = response.TtlSeconds };
    }

    /// <summary>
    /// A lease's remaining and granted TTL and, with <paramref name="keys"/>, its keys (etcd's
    /// <c>LeaseTimeToLive</c>), linearizably: after a read barrier, from this member's lessor (the
    /// remaining TTL is on this member's clock). TTL -1 for an unknown lease, as etcd.
    /// </summary>
    /// <exception cref="NoLeaderException">No leader confirmed a read point.</exception>
    /// <exception cref="TimeoutException">The leader did not confirm a read point in time.</exception>
    /// <exception cref="NodeStoppedException">The member stopped.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public async ValueTask<LeaseTimeToLiveResponse> LeaseTimeToLiveAsync(long id, bool keys = false, CancellationToken cancellationToken = default)
    {
        await Node.ReadIndexAsync(cancellationToken).ConfigureAwait(ResumeOnScheduler);
        var response = Mvcc.LeaseTimeToLive(id, keys);
        return new LeaseTimeToLiveResponse { Header = Stamp(response.Header), Id = response.Id, TtlSeconds = response.TtlSeconds, GrantedTtlSeconds = response.GrantedTtlSeconds, Keys = response.Keys };
    }

    /// <summary>Every lease not yet revoked (etcd's <c>LeaseLeases</c>), linearizably (after a read barrier).</summary>
    /// <exception cref="NoLeaderException">No leader confirmed a read point.</exception>
    /// <exception cref="TimeoutException">The leader did not confirm a read point in time.</exception>
    /// <exception cref="NodeStoppedException">The member stopped.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public async ValueTask<LeaseLeasesResponse> LeaseLeasesAsync(CancellationToken cancellationToken = default)
    {
        await Node.ReadIndexAsync(cancellationToken).ConfigureAwait(ResumeOnScheduler);
        var response = Mvcc.LeaseLeases();
        return new LeaseLeasesResponse { Header = Stamp(response.Header), Leases = response.Leases };
    }

    /// <summary>Expiry revocations this member proposed as leader and saw applied here (for tests).</summary>
    internal long ExpiryRevocationsCommitted => Interlocked.Read(ref _expiryRevocationsCommitted);

    private long _expiryRevocationsCommitted;

    /// <summary>Expiry revocations this member proposed as leader, committed or not (for tests).</summary>
    internal long ExpiryRevocationsProposed => Interlocked.Read(ref _expiryRevocationsProposed);

    private long _expiryRevocationsProposed;

    /// <summary>Completes when this member first proposes an expiry revocation (for tests).</summary>
    internal Task FirstExpiryProposed => _expiryProposed.Task;

    private readonly TaskCompletionSource _expiryProposed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private LeaseIdGenerator LeaseIds => Volatile.Read(ref _leaseIds) ?? throw new InvalidOperationException("The replicated store has not started its lease work yet.");

    partial void ApplyLeaseCommand(MvccStore store, CommandKind kind, CommittedCommand command, ref ValueTask<object?>? result)
    {
        if (kind == CommandKind.LeaseExpire && _logger.IsEnabled(LogLevel.Debug))
        {
            long lease = LeaseCommands.DecodeExpire(command.Data.Span).Id;
            ReplicatedStoreLog.LeaseExpireApplied(_logger, MemberId, lease, command.Index);
        }

        result = ApplyLease(store, kind, command);
    }

    /// <summary>Queues a lease command to the store, carrying its index; null for a kind that is not a lease's.</summary>
#pragma warning disable CA2012 // Each is returned to the apply path, which awaits it exactly once (Settle).
    private ValueTask<object?>? ApplyLease(MvccStore store, CommandKind kind, CommittedCommand command)
    {
        var data = command.Data.Span;
        switch (kind)
        {
            case CommandKind.LeaseGrant:
                var (id, ttl) = LeaseCommands.DecodeGrant(data);
                return Box(store.LeaseGrantAsync(ttl, id, command.Index));
            case CommandKind.LeaseRevoke:
                return Box(store.LeaseRevokeAsync(LeaseCommands.DecodeId(data, kind), command.Index));
            case CommandKind.LeaseKeepAlive:
                return Box(store.ApplyLeaseKeepAliveAsync(LeaseCommands.DecodeId(data, kind), command.Index));
            case CommandKind.LeaseExpire:
                var (expiredId, renewedAt) = LeaseCommands.DecodeExpire(data);
                return Box(store.ApplyExpiredLeaseRevokeAsync(expiredId, command.Index, renewedAt));
            default:
                return null;
        }
    }
#pragma warning restore CA2012

    partial void StartLeaseWork()
    {
        Volatile.Write(ref _leaseIds, new LeaseIdGenerator(MemberId, Clock));
        lock (_lessorRoleGate)
        {
            // The store opened primary (a standalone store's default): secondary until this member leads.
            Mvcc.DemoteLessor();
            _lessorPromoted = false;
            _leaseWorkStarted = true;
            if (_lastLeaderSeen == 0)
            {
                _lastLeaderSeen = Node.Status.LeaderId;
            }

            UpdateLessorRoleUnsynchronized();
        }

        RunInBackground(ExpireLeasesAsync);
    }

    partial void OnLeaderChange(LeaderChange change)
    {
        lock (_lessorRoleGate)
        {
            _lastLeaderSeen = change.LeaderId;
            if (_leaseWorkStarted)
            {
                UpdateLessorRoleUnsynchronized();
            }
        }
    }

    /// <summary>Promotes the lessor when this member became leader (restarting every TTL), demotes it when it no longer is.</summary>
    private void UpdateLessorRoleUnsynchronized()
    {
        // TestOnlyBrokenRules.FollowersExpireLeases: every member decides expiry (simulator tests only).
        bool leading = _lastLeaderSeen == MemberId || _options.BrokenRules.FollowersExpireLeases;
        if (leading && !_lessorPromoted)
        {
            Mvcc.PromoteLessor();
            _lessorPromoted = true;
            ReplicatedStoreLog.LessorPromoted(_logger, MemberId);
        }
        else if (!leading && _lessorPromoted)
        {
            Mvcc.DemoteLessor();
            _lessorPromoted = false;
            ReplicatedStoreLog.LessorDemoted(_logger, MemberId, _lastLeaderSeen);
        }
    }

    /// <summary>
    /// The leader's expiry loop: every <see cref="LeaseOptions.ExpiryCheckInterval"/>, while the
    /// lessor is primary, proposes a revocation of each lease that ran out — at most
    /// <see cref="LeaseOptions.MaxRevokesPerSecond"/>' share of one interval — and waits for that
    /// round before the next. A proposal that fails (leadership lost, timed out) is not retried
    /// here: the lessor reports the lease again after <see cref="LeaseOptions.ExpiredReportRetryInterval"/>.
    /// </summary>
    private async Task ExpireLeasesAsync()
    {
        var leases = _storeOptions.Leases;
        int budget = (int)Math.Clamp(leases.MaxRevokesPerSecond * leases.ExpiryCheckInterval.TotalSeconds, 1, int.MaxValue);
        using var timer = new PeriodicTimer(leases.ExpiryCheckInterval, Clock);
        try
        {
            while (await timer.WaitForNextTickAsync(Stopping).ConfigureAwait(ResumeOnScheduler))
            {
                var store = Mvcc;
                if (!store.IsLessorPrimary)
                {
                    continue;
                }

                IReadOnlyList<(long Id, long RenewedAtIndex)> expired;
                try
                {
                    expired = store.TakeExpiredLeasesWithRenewals(budget);
                }
                catch (ObjectDisposedException)
                {
                    return;
                }

                if (expired.Count > 0)
                {
                    await Task.WhenAll(expired.Select(e => ProposeExpiryAsync(e.Id, e.RenewedAtIndex))).ConfigureAwait(ResumeOnScheduler);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }

    /// <summary>
    /// Proposes the expiry revocation of a lease whose last applied keep-alive was at
    /// <paramref name="renewedAtIndex"/>: a keep-alive the log orders after that one but before this
    /// entry renewed the lease (and answered its full TTL), so every member then applies this as a
    /// no-op — decided from the log and the stored lease alone, as etcd's leader never revokes a
    /// lease a keep-alive renewed after it found it expired.
    /// </summary>
    private async Task ProposeExpiryAsync(long id, long renewedAtIndex)
    {
        Interlocked.Increment(ref _expiryRevocationsProposed);
        _expiryProposed.TrySetResult();
        try
        {
            // TestOnlyBrokenRules.FollowersExpireLeases: a follower's expiry is authoritative, as if the
            // renewal fence did not exist (the fence alone would otherwise hide most of the broken rule).
            var command = _options.BrokenRules.FollowersExpireLeases && _lastLeaderSeen != MemberId
                ? LeaseCommands.EncodeUnfencedExpire(id)
                : LeaseCommands.EncodeExpire(id, renewedAtIndex);
            var result = await Node.ProposeAsync(command, Stopping).ConfigureAwait(ResumeOnScheduler);
            ThrowIfRefused(result);
            Interlocked.Increment(ref _expiryRevocationsCommitted);
            ReplicatedStoreMetrics.LeaseExpired(MemberId);
        }
        catch (Exception e) when (e is NoLeaderException or ProposalDroppedException or NodeStoppedException or OperationCanceledException or TimeoutException or MvccException)
        {
            if (_logger.IsEnabled(LogLevel.Debug))
            {
                ReplicatedStoreLog.ExpiryProposalFailed(_logger, e, MemberId, id);
            }
        }
    }
}
