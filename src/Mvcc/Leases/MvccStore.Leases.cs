using EmbeddedRaft.Mvcc.Leases;
using EmbeddedRaft.Mvcc.Store;
using EmbeddedRaft.Storage;
using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Mvcc;

// Leases (etcd's Lease service and lessor). Grants and revocations go through the writer like puts,
// in its batches; keep-alive and the reads run on the calling thread against the in-memory lessor.
//
// Expiry is split in two on purpose: the DECISION (Lessor.TakeExpired: which leases ran out, on the
// clock of LeaseOptions.TimeProvider, earliest first, at most a budget per round) and the
// REVOCATION (an ordinary LeaseRevoke through the writer). With LeaseOptions.RevokeExpired (the
// default) a timer joins the two here. A replicated store turns it off: its leader calls
// TakeExpiredLeases and proposes the revokes through Raft, every replica applies them with
// LeaseRevokeAsync, and a new leader calls RefreshLeases first (etcd's Promote) — no other change.
public sealed partial class MvccStore
{
    private ITimer? _expiryTimer;
    private Task _expiryRound = Task.CompletedTask;
    private int _expiryCheckRunning;

    /// <summary>
    /// Grants a lease (etcd's <c>LeaseGrant</c>): a TTL below <see cref="LeaseOptions.MinTtlSeconds"/>
    /// is raised to it; the TTL starts now. Creates no revision. Durable as a put is (see
    /// <see cref="MvccStoreOptions.Durability"/>); persists across restarts.
    /// </summary>
    /// <param name="ttlSeconds">The TTL asked for, in seconds, at most <see cref="LeaseOptions.MaxTtlSeconds"/>.</param>
    /// <param name="id">The lease id, or 0 for the store to choose a positive one no lease has. Under Raft choose it before proposing, as etcd's server does, so every replica grants the same id.</param>
    /// <param name="consistentIndex">The Raft index that produced this grant, or 0. Must exceed <see cref="ConsistentIndex"/>.</param>
    /// <param name="cancellationToken">Cancels the wait; a grant already queued may still be applied.</param>
    /// <exception cref="MvccException"><see cref="MvccError.LeaseTtlTooLarge"/>: the TTL is above the maximum; <see cref="MvccError.LeaseExists"/>: a lease with <paramref name="id"/> exists. Nothing was written.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="consistentIndex"/> does not exceed <see cref="ConsistentIndex"/>.</exception>
    /// <exception cref="StorageFaultedException">A write or flush failed.</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed.</exception>
    public ValueTask<LeaseGrantResponse> LeaseGrantAsync(long ttlSeconds, long id = 0, ulong consistentIndex = 0, CancellationToken cancellationToken = default)
    {
        if (ttlSeconds > LeaseOptions.MaxTtlSeconds)
        {
            throw new MvccException(MvccError.LeaseTtlTooLarge, $"{MvccException.MessageOf(MvccError.LeaseTtlTooLarge)} ({ttlSeconds} s; the maximum is {LeaseOptions.MaxTtlSeconds} s)");
        }

        return Submit<LeaseGrantResponse>(new WriteOp(WriteOpKind.LeaseGrant, new LeaseGrantOp(id, ttlSeconds), consistentIndex), cancellationToken);
    }

    /// <summary>
    /// Revokes a lease (etcd's <c>LeaseRevoke</c>): deletes every key attached to it in one write
    /// transaction — one new revision, through the ordinary delete path, so the history and watchers
    /// see the deletes — and forgets the lease, in the same commit.
    /// </summary>
    /// <param name="id">The lease.</param>
    /// <param name="consistentIndex">The Raft index that produced this revocation, or 0. Must exceed <see cref="ConsistentIndex"/>.</param>
    /// <param name="cancellationToken">Cancels the wait; a revocation already queued may still be applied.</param>
    /// <exception cref="MvccException"><see cref="MvccError.LeaseNotFound"/>: no such lease (never granted, or already revoked or expired). Nothing was written.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="consistentIndex"/> does not exceed <see cref="ConsistentIndex"/>.</exception>
    /// <exception cref="StorageFaultedException">A write or flush failed.</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed.</exception>
    public ValueTask<LeaseRevokeResponse> LeaseRevokeAsync(long id, ulong consistentIndex = 0, CancellationToken cancellationToken = default) =>
        Submit<LeaseRevokeResponse>(new WriteOp(WriteOpKind.LeaseRevoke, new LeaseRevokeOp(id, OnlyIfExpired: false), consistentIndex), cancellationToken);

    /// <summary>
    /// Keeps a lease alive (one etcd <c>LeaseKeepAlive</c> round): its TTL runs again in full from
    /// now. Writes nothing (as etcd, a renewal is not persisted: a restart refreshes every lease
    /// anyway). Completes synchronously for a live or unknown lease. For a lease whose TTL already
    /// ran out but which is not yet revoked it waits, as etcd's lessor does, until the lease is
    /// revoked (then it answers not found), or renewed meanwhile from a replicated log or by a
    /// promotion or restore (then it renews it), or the lessor is demoted, or the store closes.
    /// Thread-safe.
    /// </summary>
    /// <param name="id">The lease.</param>
    /// <param name="cancellationToken">Cancels the wait for an expired lease's revocation.</param>
    /// <exception cref="MvccException"><see cref="MvccError.LeaseNotFound"/>: no such lease, or it expired and has been revoked (etcd's client reports the same); <see cref="MvccError.NotLeader"/>: it expired while the lessor was demoted (a replicated store's follower), as etcd's ErrNotPrimary.</exception>
    /// <exception cref="StorageFaultedException">A write or flush failed earlier, or while waiting.</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed (or was, while waiting).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public ValueTask<LeaseKeepAliveResponse> LeaseKeepAliveAsync(long id, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        ThrowIfDisposed();
        _state.ThrowIfFailed();
        var (ttl, expired) = _state.Lessor.KeepAlive(id);
        return expired is null ? ValueTask.FromResult(KeepAliveResponse(id, ttl)) : new ValueTask<LeaseKeepAliveResponse>(KeepAliveExpiredAsync(id, expired, cancellationToken));
    }

    /// <summary>
    /// A lease's remaining and granted TTL and, with <paramref name="keys"/>, its attached keys
    /// (etcd's <c>LeaseTimeToLive</c>). For an unknown lease the answer has TTL -1, as etcd's
    /// (it does not throw). Thread-safe.
    /// </summary>
    /// <exception cref="StorageFaultedException">A write or flush failed earlier.</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed.</exception>
    public LeaseTimeToLiveResponse LeaseTimeToLive(long id, bool keys = false)
    {
        ThrowIfDisposed();
        _state.ThrowIfFailed();
        var header = new ResponseHeader { Revision = Revision };
        if (_state.Lessor.TimeToLive(id, keys) is not { } found)
        {
            return new LeaseTimeToLiveResponse { Header = header, Id = id, TtlSeconds = -1, Keys = [] };
        }

        return new LeaseTimeToLiveResponse
        {
            Header = header,
            Id = id,
            TtlSeconds = found.Remaining,
            GrantedTtlSeconds = found.Granted,
            Keys = found.Keys is { } attached ? attached.ConvertAll(k => (ReadOnlyMemory<byte>)k) : [],
        };
    }

    /// <summary>Every lease not yet revoked, the soonest to expire first (etcd's <c>LeaseLeases</c>, sorted as etcd sorts it). Thread-safe.</summary>
    /// <exception cref="StorageFaultedException">A write or flush failed earlier.</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed.</exception>
    public LeaseLeasesResponse LeaseLeases()
    {
        ThrowIfDisposed();
        _state.ThrowIfFailed();
        return new LeaseLeasesResponse { Header = new ResponseHeader { Revision = Revision }, Leases = _state.Lessor.Ids() };
    }

    /// <summary>
    /// The expiry decision without the revocation: up to <paramref name="maxCount"/> leases whose TTL
    /// has run out, earliest first. Each is reported once, then again every
    /// <see cref="LeaseOptions.ExpiredReportRetryInterval"/> until it is revoked. For a store with
    /// <see cref="LeaseOptions.RevokeExpired"/> false, whose owner (a replicated store's leader)
    /// revokes them with <see cref="LeaseRevokeAsync"/>; with it true the store's own check takes them. Thread-safe.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxCount"/> is below 1.</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed.</exception>
    public IReadOnlyList<long> TakeExpiredLeases(int maxCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxCount, 1);
        ThrowIfDisposed();
        return _state.Lessor.TakeExpired(maxCount);
    }

    /// <summary>
    /// A keep-alive applied from the replicated log at <paramref name="consistentIndex"/>: renews the
    /// lease on this member's clock when it exists, expired here or not (the log orders keep-alives
    /// and revocations; see <see cref="Leases.Lessor.RenewApplied"/>), in order with the writes
    /// queued before it. Every member gives the same answer.
    /// </summary>
    /// <exception cref="MvccException"><see cref="MvccError.LeaseNotFound"/>: no such lease; nothing was written (not even the consistent index).</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="consistentIndex"/> does not exceed <see cref="ConsistentIndex"/>.</exception>
    /// <exception cref="StorageFaultedException">A write or flush failed.</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed.</exception>
    internal async ValueTask<LeaseKeepAliveResponse> ApplyLeaseKeepAliveAsync(long id, ulong consistentIndex, CancellationToken cancellationToken = default)
    {
        object? result = await Submit<object?>(new WriteOp(WriteOpKind.LeaseKeepAlive, id, consistentIndex), cancellationToken).ConfigureAwait(ResumeOnScheduler);
        return (LeaseKeepAliveResponse)result!;
    }

    /// <summary>
    /// A replicated leader's expiry revocation applied from the log at <paramref name="consistentIndex"/>:
    /// revokes the lease as <see cref="LeaseRevokeAsync"/> does, whatever this member's clock says,
    /// and does nothing (no error) when an earlier entry already revoked it, or when a keep-alive
    /// applied after <c>renewedAtIndexOrBelow</c> (the lease's last applied keep-alive index when the
    /// leader found it expired, <see cref="TakeExpiredLeasesWithRenewals"/>) renewed it; null (an
    /// entry written before it existed) revokes unconditionally.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="consistentIndex"/> does not exceed <see cref="ConsistentIndex"/>.</exception>
    /// <exception cref="StorageFaultedException">A write or flush failed.</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed.</exception>
    internal ValueTask<LeaseRevokeResponse> ApplyExpiredLeaseRevokeAsync(long id, ulong consistentIndex, long? renewedAtIndexOrBelow = null, CancellationToken cancellationToken = default) =>
        Submit<LeaseRevokeResponse>(new WriteOp(WriteOpKind.LeaseRevoke, new LeaseRevokeOp(id, OnlyIfExpired: false, IfExists: true, renewedAtIndexOrBelow), consistentIndex), cancellationToken);

    /// <summary>
    /// <see cref="TakeExpiredLeases"/>, each lease with the log index of its last applied keep-alive
    /// (0: none), for a replicated leader's expiry revocation to carry. Thread-safe.
    /// </summary>
    internal IReadOnlyList<(long Id, long RenewedAtIndex)> TakeExpiredLeasesWithRenewals(int maxCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxCount, 1);
        ThrowIfDisposed();
        return _state.Lessor.TakeExpiredWithRenewals(maxCount);
    }

    /// <summary>True when the lessor is primary: <see cref="TakeExpiredLeases"/> reports expired leases only then.</summary>
    internal bool IsLessorPrimary => _state.Lessor.IsPrimary;

    /// <summary>
    /// Makes the lessor primary (etcd's <c>Promote</c>; a replicated store's member that became
    /// leader): every lease's TTL restarts in full from now first, so an election never expires
    /// leases en masse; then <see cref="TakeExpiredLeases"/> reports the ones that run out. Thread-safe.
    /// </summary>
    internal void PromoteLessor() => _state.Lessor.Promote();

    /// <summary>
    /// Makes the lessor secondary (etcd's <c>Demote</c>; a replicated store's member that is not
    /// leader): <see cref="TakeExpiredLeases"/> reports nothing until <see cref="PromoteLessor"/>. Thread-safe.
    /// </summary>
    internal void DemoteLessor() => _state.Lessor.Demote();

    /// <summary>
    /// Restarts every lease's TTL in full from now (etcd's <c>Promote</c>), so time when no one could
    /// renew them does not count: the store does it at open; a replicated store's new leader does it
    /// before it starts revoking. Thread-safe.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The store is disposed.</exception>
    public void RefreshLeases()
    {
        ThrowIfDisposed();
        _state.Lessor.RefreshAll();
    }

    /// <summary>The revocations the last expiry check queued (for tests: after advancing a fake clock, await this).</summary>
    internal Task LeaseExpiryRound => Volatile.Read(ref _expiryRound);

    /// <summary>Leases not yet revoked (for benchmarks: cheaper than listing them).</summary>
    internal int LeaseCount => _state.Lessor.Count;

    /// <summary>Entries in the lessor's expiry queue, stale ones included (for the test of its bound).</summary>
    internal int LeaseQueueEntryCount => _state.Lessor.DueEntryCount;

    private void StartLeaseExpiry()
    {
        var options = _state.Options.Leases;
        if (options.RevokeExpired)
        {
            // Deterministic mode: the round runs as a task on the scheduler, not inside the clock's callback.
            _expiryTimer = _state.Options.Scheduler is { } scheduler
                ? options.TimeProvider.CreateTimer(_ => Task.Factory.StartNew(CheckLeaseExpiry, CancellationToken.None, TaskCreationOptions.DenyChildAttach, scheduler), null, options.ExpiryCheckInterval, options.ExpiryCheckInterval)
                : options.TimeProvider.CreateTimer(_ => CheckLeaseExpiry(), null, options.ExpiryCheckInterval, options.ExpiryCheckInterval);
        }
    }

    private void StopLeaseExpiry() => _expiryTimer?.Dispose();

    /// <summary>
    /// One expiry round (timer callback): while the previous round's revocations are still queued it
    /// does nothing; otherwise it queues a revocation for each expired lease, at most the rate limit's
    /// share of one interval. The writer takes them in order with other writes and commits them in
    /// its batches, so a writer waits behind at most one round.
    /// </summary>
    private void CheckLeaseExpiry()
    {
        if (Interlocked.Exchange(ref _expiryCheckRunning, 1) != 0)
        {
            return;
        }

        try
        {
            if (!Volatile.Read(ref _expiryRound).IsCompleted || Volatile.Read(ref _disposed) != 0 || _state.Failure is not null)
            {
                return;
            }

            var options = _state.Options.Leases;
            int budget = (int)Math.Clamp(options.MaxRevokesPerSecond * options.ExpiryCheckInterval.TotalSeconds, 1, int.MaxValue);
            var expired = _state.Lessor.TakeExpired(budget);
            if (expired.Count == 0)
            {
                return;
            }

            var revocations = new List<Task>(expired.Count);
            foreach (long id in expired)
            {
                var revoke = new WriteOp(WriteOpKind.LeaseRevoke, new LeaseRevokeOp(id, OnlyIfExpired: true), 0);
                _writer.Enqueue(revoke);
                revocations.Add(revoke.AsValueTask<object?>().AsTask());
            }

            var round = Task.WhenAll(revocations);
            round.ContinueWith(
                t => _state.Options.Logger?.LogWarning(t.Exception, "MVCC store {Path}: revoking expired leases failed.", _state.Path),
                CancellationToken.None,
                TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously,
                _state.Options.Scheduler ?? TaskScheduler.Default);
            Volatile.Write(ref _expiryRound, round);
        }
        catch (ObjectDisposedException)
        {
            // The store is being disposed: its writer takes no more requests.
        }
        finally
        {
            Volatile.Write(ref _expiryCheckRunning, 0);
        }
    }

    private LeaseKeepAliveResponse KeepAliveResponse(long id, long ttl) =>
        new() { Header = new ResponseHeader { Revision = Revision }, Id = id, TtlSeconds = ttl };

    /// <summary>The wait of <see cref="LeaseKeepAliveAsync"/> for a lease whose TTL ran out before it was revoked.</summary>
    private async Task<LeaseKeepAliveResponse> KeepAliveExpiredAsync(long id, Task<ExpiredLeaseOutcome> expired, CancellationToken cancellationToken)
    {
        while (true)
        {
            var outcome = cancellationToken.CanBeCanceled
                ? await SchedulerWaits.WaitAsync(expired, cancellationToken).ConfigureAwait(ResumeOnScheduler)
                : await expired.ConfigureAwait(ResumeOnScheduler);
            switch (outcome)
            {
                case ExpiredLeaseOutcome.Revoked:
                    throw new MvccException(MvccError.LeaseNotFound);
                case ExpiredLeaseOutcome.NotPrimary:
                    throw new MvccException(MvccError.NotLeader, $"{MvccException.MessageOf(MvccError.NotLeader)} (lease {id} expired and this store's lessor was demoted before it was revoked)");
                case ExpiredLeaseOutcome.Closed:
                    _state.ThrowIfFailed();
                    throw new ObjectDisposedException(nameof(MvccStore));
                case ExpiredLeaseOutcome.Renewed:
                    ThrowIfDisposed();
                    _state.ThrowIfFailed();
                    (long ttl, var again) = _state.Lessor.KeepAlive(id);
                    if (again is null)
                    {
                        return KeepAliveResponse(id, ttl);
                    }

                    expired = again;
                    break;
                default:
                    throw new InvariantViolationException($"MVCC lease: unexpected outcome {outcome} of an expired lease.");
            }
        }
    }
}
