using EmbeddedRaft.Mvcc.Index;

namespace EmbeddedRaft.Mvcc.Leases;

/// <summary>
/// The store's leases in memory (etcd's <c>lessor</c>): each lease's granted TTL, expiry and
/// attached keys, the key-to-lease map, and a priority queue of expiry times. It decides nothing
/// and deletes nothing: the writer grants, attaches and removes (inside its batches), callers keep
/// alive and read, and <see cref="TakeExpired"/> only reports which leases ran out. Who revokes
/// them is the store's choice (<see cref="LeaseOptions.RevokeExpired"/>).
/// </summary>
/// <remarks>
/// <para>Threading: every member takes <see cref="_gate"/>; none does IO under it.</para>
/// <para>Time: expiry is a monotonic timestamp of <see cref="LeaseOptions.TimeProvider"/>, so wall
/// clock jumps never expire a lease. A restart restores every lease with its full granted TTL
/// (<see cref="Restore"/>), as etcd's <c>Promote</c> does on recovery: downtime does not count.</para>
/// <para>Invariants: a key is in <see cref="_attachments"/> with lease L exactly when it is in L's
/// key set, and then L exists; every lease has an entry in <see cref="_due"/> at
/// max(expiry, reported-until), the next time it may be reported (older entries are skipped when
/// popped, and the queue is rebuilt when they pile up).</para>
/// </remarks>
internal sealed class Lessor
{
    private readonly object _gate = new();
    private readonly Dictionary<long, Entry> _leases = [];
    private readonly Dictionary<byte[], long> _attachments = new(new KeyBytesComparer());
    private PriorityQueue<long, long> _due = new();
    private readonly TimeProvider _time;
    private readonly long _frequency;
    private readonly long _reportRetryTicks;
    private long _lastAutoId;
    private bool _primary = true;
    private bool _closed;
    private readonly TaskCreationOptions _continuationOptions;

    // How many keys are attached, read without the lock: a put without a lease skips the lock while none is.
    private int _attachedCount;

    /// <param name="options">The lease options.</param>
    /// <param name="deterministic">Deterministic mode (a store scheduler): a waiting keep-alive's continuation runs where the lease's fate is decided (it is queued to the caller's scheduler), not on the thread pool.</param>
    public Lessor(LeaseOptions options, bool deterministic = false)
    {
        _continuationOptions = deterministic ? TaskCreationOptions.None : TaskCreationOptions.RunContinuationsAsynchronously;
        _time = options.TimeProvider;
        _frequency = _time.TimestampFrequency;
        _reportRetryTicks = (long)(options.ExpiredReportRetryInterval.TotalSeconds * _frequency);

        // Automatic ids start from the wall clock in milliseconds, shifted left 16 bits (as etcd's
        // idutil puts a timestamp in its ids): a restarted store does not hand out an id a client
        // may still hold from before, unless the clock went back. Restore raises it above stored ids.
        _lastAutoId = Math.Max(0, _time.GetUtcNow().ToUnixTimeMilliseconds()) << 16;
    }

    /// <summary>
    /// True when this lessor reports expired leases (<see cref="TakeExpired"/>): etcd's primary
    /// lessor, the leader's. A standalone store's lessor is primary from the start; a replicated
    /// store demotes it at open and promotes it when its member becomes leader (<see cref="Promote"/>).
    /// </summary>
    public bool IsPrimary
    {
        get
        {
            lock (_gate)
            {
                return _primary;
            }
        }
    }

    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _leases.Count;
            }
        }
    }

    public bool Contains(long id)
    {
        lock (_gate)
        {
            return _leases.ContainsKey(id);
        }
    }

    /// <summary>True when the lease exists and its TTL has run out.</summary>
    public bool IsExpired(long id)
    {
        lock (_gate)
        {
            return _leases.TryGetValue(id, out var entry) && entry.ExpiryTimestamp <= _time.GetTimestamp();
        }
    }

    /// <summary>A positive id no lease has (writer thread).</summary>
    public long ChooseId()
    {
        lock (_gate)
        {
            // Bounded: at most one step per existing lease.
            while (true)
            {
                _lastAutoId = (_lastAutoId + 1) & long.MaxValue;
                if (_lastAutoId != 0 && !_leases.ContainsKey(_lastAutoId))
                {
                    return _lastAutoId;
                }
            }
        }
    }

    /// <summary>Adds a granted lease, its TTL running from now (writer thread).</summary>
    public void Grant(long id, long ttlSeconds)
    {
        lock (_gate)
        {
            if (!_leases.TryAdd(id, new Entry(id, ttlSeconds)))
            {
                throw new InvariantViolationException($"Lessor: lease {id} granted twice.");
            }

            Renew(_leases[id], _time.GetTimestamp());
        }
    }

    /// <summary>Adds a lease read from the B+tree at open, with its full TTL from now and the log index of its last applied keep-alive (0: none).</summary>
    public void Restore(long id, long ttlSeconds, long renewedAtIndex = 0)
    {
        Grant(id, ttlSeconds);
        lock (_gate)
        {
            _lastAutoId = Math.Max(_lastAutoId, id);
            _leases[id].RenewedAtIndex = renewedAtIndex;
        }
    }

    /// <summary>
    /// The log index of the last keep-alive applied from the replicated log to the lease (0: none
    /// since its grant), or null for no such lease. Replicated state: every member has the same.
    /// </summary>
    public long? RenewedAtIndex(long id)
    {
        lock (_gate)
        {
            return _leases.TryGetValue(id, out var entry) ? entry.RenewedAtIndex : null;
        }
    }

    /// <summary>Removes a revoked lease (writer thread), after the revocation deleted its keys.</summary>
    public void Remove(long id)
    {
        lock (_gate)
        {
            if (!_leases.Remove(id, out var entry))
            {
                throw new InvariantViolationException($"Lessor: removing lease {id}, which does not exist.");
            }

            entry.EndWait(ExpiredLeaseOutcome.Revoked);

            if (entry.Keys.Count != 0)
            {
                throw new InvariantViolationException($"Lessor: lease {id} removed with {entry.Keys.Count} keys still attached.");
            }
        }
    }

    /// <summary>The keys attached to the lease, in key order (empty when there is no such lease).</summary>
    public List<byte[]> KeysOf(long id)
    {
        List<byte[]> keys;
        lock (_gate)
        {
            keys = _leases.TryGetValue(id, out var entry) ? [.. entry.Keys] : [];
        }

        keys.Sort((a, b) => a.AsSpan().SequenceCompareTo(b));
        return keys;
    }

    /// <summary>
    /// Attaches <paramref name="key"/> to <paramref name="lease"/> (0: to none), detaching it from
    /// the lease it had (writer thread, on every put and delete). The lease must exist.
    /// </summary>
    public void Attach(ReadOnlySpan<byte> key, long lease)
    {
        if (lease == 0 && Volatile.Read(ref _attachedCount) == 0)
        {
            return;
        }

        lock (_gate)
        {
            var lookup = _attachments.GetAlternateLookup<ReadOnlySpan<byte>>();
            bool had = lookup.TryGetValue(key, out byte[]? storedKey, out long previous);
            if (had && previous == lease)
            {
                return;
            }

            if (had)
            {
                if (!_leases.TryGetValue(previous, out var old) || !old.Keys.Remove(storedKey!))
                {
                    throw new InvariantViolationException($"Lessor: key {MvccText.Show(key)} attached to lease {previous}, which does not hold it.");
                }

                _attachments.Remove(storedKey!);
            }

            if (lease != 0)
            {
                if (!_leases.TryGetValue(lease, out var entry))
                {
                    throw new InvariantViolationException($"Lessor: attaching key {MvccText.Show(key)} to lease {lease}, which does not exist.");
                }

                byte[] copy = storedKey ?? key.ToArray();
                entry.Keys.Add(copy);
                _attachments[copy] = lease;
            }

            Volatile.Write(ref _attachedCount, _attachments.Count);
        }
    }

    /// <summary>The lease a key is attached to, 0 for none.</summary>
    public long LeaseOf(ReadOnlySpan<byte> key)
    {
        lock (_gate)
        {
            return _attachments.GetAlternateLookup<ReadOnlySpan<byte>>().TryGetValue(key, out long lease) ? lease : 0;
        }
    }

    /// <summary>
    /// Renews the lease (etcd's <c>Renew</c>): its TTL runs again from now, and the granted TTL is
    /// returned. A lease whose TTL already ran out is not renewed: as etcd's lessor, which waits for
    /// an expired lease's revocation ("to be accurate, renew request must wait for the deletion to
    /// complete") before it answers not found, the answer is then a task that completes when the
    /// lease's fate is known (<see cref="ExpiredLeaseOutcome"/>); the caller acts on it and, for
    /// <see cref="ExpiredLeaseOutcome.Renewed"/>, asks again.
    /// </summary>
    /// <exception cref="MvccException">No such lease: <see cref="MvccError.LeaseNotFound"/>.</exception>
    public (long TtlSeconds, Task<ExpiredLeaseOutcome>? Expired) KeepAlive(long id)
    {
        lock (_gate)
        {
            long now = _time.GetTimestamp();
            if (!_leases.TryGetValue(id, out var entry))
            {
                throw new MvccException(MvccError.LeaseNotFound);
            }

            if (entry.ExpiryTimestamp <= now)
            {
                if (_closed)
                {
                    return (0, Task.FromResult(ExpiredLeaseOutcome.Closed));
                }

                entry.ExpiredWaiter ??= new TaskCompletionSource<ExpiredLeaseOutcome>(_continuationOptions);
                return (0, entry.ExpiredWaiter.Task);
            }

            Renew(entry, now);
            return (entry.TtlSeconds, null);
        }
    }

    /// <summary>The store is closing: every keep-alive waiting for an expired lease's revocation gets <see cref="ExpiredLeaseOutcome.Closed"/>, and later ones at once.</summary>
    public void Close()
    {
        lock (_gate)
        {
            _closed = true;
            foreach (var entry in _leases.Values)
            {
                entry.EndWait(ExpiredLeaseOutcome.Closed);
            }
        }
    }

    /// <summary>The remaining TTL (whole seconds, 0 once run out), the granted TTL and, when asked, the keys; null for no such lease.</summary>
    public (long Remaining, long Granted, List<byte[]>? Keys)? TimeToLive(long id, bool keys)
    {
        long remaining;
        long granted;
        lock (_gate)
        {
            if (!_leases.TryGetValue(id, out var entry))
            {
                return null;
            }

            long left = entry.ExpiryTimestamp - _time.GetTimestamp();
            remaining = left <= 0 ? 0 : left / _frequency;
            granted = entry.TtlSeconds;
        }

        return (remaining, granted, keys ? KeysOf(id) : null);
    }

    /// <summary>Every lease id, the soonest to expire first (ties by id), as etcd's <c>Leases</c> sorts them.</summary>
    public List<long> Ids()
    {
        List<(long Expiry, long Id)> leases;
        lock (_gate)
        {
            leases = [.. _leases.Values.Select(e => (e.ExpiryTimestamp, e.Id))];
        }

        leases.Sort();
        return leases.ConvertAll(l => l.Id);
    }

    /// <summary>
    /// Up to <paramref name="max"/> leases whose TTL has run out, earliest first; none while this
    /// lessor is not primary (<see cref="Demote"/>). A lease reported
    /// here is not reported again for <see cref="LeaseOptions.ExpiredReportRetryInterval"/> (it is
    /// expected to be revoked meanwhile; if not, it is reported again, as etcd's lessor retries).
    /// </summary>
    public List<long> TakeExpired(int max) => TakeExpiredWithRenewals(max).ConvertAll(e => e.Id);

    /// <summary>
    /// <see cref="TakeExpired"/>, each lease with its <see cref="RenewedAtIndex"/> as it was when found
    /// expired (a replicated leader's expiry revocation carries it, so a keep-alive applied after it
    /// makes the revocation a no-op on every member).
    /// </summary>
    public List<(long Id, long RenewedAtIndex)> TakeExpiredWithRenewals(int max)
    {
        var expired = new List<(long Id, long RenewedAtIndex)>();
        lock (_gate)
        {
            if (!_primary)
            {
                return expired;
            }

            long now = _time.GetTimestamp();
            while (expired.Count < max && _due.TryPeek(out long id, out long due) && due <= now)
            {
                _due.Dequeue();
                if (!_leases.TryGetValue(id, out var entry) || entry.ExpiryTimestamp > now || entry.ReportedUntilTimestamp > now)
                {
                    // Stale: the lease is gone, was renewed, or was reported and has a later entry.
                    continue;
                }

                expired.Add((id, entry.RenewedAtIndex));
                entry.ReportedUntilTimestamp = now + _reportRetryTicks;
                _due.Enqueue(id, entry.ReportedUntilTimestamp);
            }
        }

        return expired;
    }

    /// <summary>
    /// Makes this the primary lessor (etcd's <c>Promote</c>, for a member that became leader): every
    /// lease's TTL first restarts in full from now, so the time before this member led, when no
    /// one was deciding expiry here and keep-alives may have gone elsewhere, never expires leases
    /// en masse at an election; only then does <see cref="TakeExpired"/> report anything.
    /// </summary>
    public void Promote()
    {
        lock (_gate)
        {
            RefreshAllUnsynchronized();
            _primary = true;
        }
    }

    /// <summary>
    /// Makes this a secondary lessor (etcd's <c>Demote</c>, for a member that is not, or no longer,
    /// leader): <see cref="TakeExpired"/> reports nothing until <see cref="Promote"/>. Keep-alives and
    /// grants still run each lease's clock, so the TTLs stay meaningful for reads.
    /// </summary>
    public void Demote()
    {
        lock (_gate)
        {
            _primary = false;

            // As etcd's demotec: a keep-alive waiting for an expired lease's revocation is told this
            // member no longer decides (the revocation may never come from here).
            foreach (var entry in _leases.Values)
            {
                entry.EndWait(ExpiredLeaseOutcome.NotPrimary);
            }
        }
    }

    /// <summary>
    /// A keep-alive applied from the replicated log: renews the lease from now on this member's
    /// clock whenever the lease exists, expired here or not, and returns the granted TTL; null when
    /// there is no such lease. Every member answers the same (existence is replicated state; the
    /// local clock only decides when the expiry runs out), so the member that proposed it answers
    /// as the leader would have: the log, not a clock, orders a keep-alive and a revocation.
    /// </summary>
    public long? RenewApplied(long id, long index)
    {
        lock (_gate)
        {
            if (!_leases.TryGetValue(id, out var entry))
            {
                return null;
            }

            if (index != 0)
            {
                entry.RenewedAtIndex = index;
            }

            Renew(entry, _time.GetTimestamp());
            return entry.TtlSeconds;
        }
    }

    /// <summary>
    /// Replaces every lease and attachment by <paramref name="source"/>'s (a lessor just loaded from a
    /// restored snapshot, used by no one else). Expiries come along as loaded (full TTLs from the
    /// load); whether this lessor is primary does not change.
    /// </summary>
    public void ReplaceWith(Lessor source)
    {
        lock (_gate)
        {
            // Waiting keep-alives ask again, against the restored leases.
            foreach (var entry in _leases.Values)
            {
                entry.EndWait(ExpiredLeaseOutcome.Renewed);
            }

            _leases.Clear();
            _attachments.Clear();
            foreach (var (id, entry) in source._leases)
            {
                _leases.Add(id, entry);
            }

            foreach (var (key, lease) in source._attachments)
            {
                _attachments.Add(key, lease);
            }

            _due = new PriorityQueue<long, long>(_leases.Count);
            foreach (var entry in _leases.Values)
            {
                _due.Enqueue(entry.Id, entry.ExpiryTimestamp);
            }

            _lastAutoId = Math.Max(_lastAutoId, source._lastAutoId);
            Volatile.Write(ref _attachedCount, _attachments.Count);
        }
    }

    /// <summary>Restarts every lease's TTL from now: at open, and for a new primary (<see cref="Promote"/>).</summary>
    public void RefreshAll()
    {
        lock (_gate)
        {
            RefreshAllUnsynchronized();
        }
    }

    private void RefreshAllUnsynchronized()
    {
        long now = _time.GetTimestamp();
        _due = new PriorityQueue<long, long>(_leases.Count);
        foreach (var entry in _leases.Values)
        {
            entry.ReportedUntilTimestamp = 0;
            entry.ExpiryTimestamp = Later(now, entry.TtlSeconds);
            _due.Enqueue(entry.Id, entry.ExpiryTimestamp);
            entry.EndWait(ExpiredLeaseOutcome.Renewed);
        }
    }

    /// <summary>Heap entries, live and stale (for tests of the queue's bound).</summary>
    internal int DueEntryCount
    {
        get
        {
            lock (_gate)
            {
                return _due.Count;
            }
        }
    }

    private void Renew(Entry entry, long now)
    {
        entry.ExpiryTimestamp = Later(now, entry.TtlSeconds);
        entry.ReportedUntilTimestamp = 0;

        // Renewed from the log while expired here (a replicated leader had not revoked it): a waiting keep-alive renews it too.
        entry.EndWait(ExpiredLeaseOutcome.Renewed);

        // Keep-alives leave stale entries behind; rebuild before they outnumber the leases twice over.
        if (_due.Count > (2 * _leases.Count) + 1024)
        {
            var rebuilt = new PriorityQueue<long, long>(_leases.Count);
            foreach (var lease in _leases.Values)
            {
                rebuilt.Enqueue(lease.Id, Math.Max(lease.ExpiryTimestamp, lease.ReportedUntilTimestamp));
            }

            _due = rebuilt;
            return;
        }

        _due.Enqueue(entry.Id, entry.ExpiryTimestamp);
    }

    /// <summary>now + seconds on the timestamp clock, saturating (etcd's maximum TTL in nanosecond ticks nearly fills a long).</summary>
    private long Later(long now, long seconds) =>
        seconds > (long.MaxValue - now) / _frequency ? long.MaxValue : now + (seconds * _frequency);

    private sealed class Entry(long id, long ttlSeconds)
    {
        public long Id { get; } = id;

        public long TtlSeconds { get; } = ttlSeconds;

        public long ExpiryTimestamp { get; set; }

        /// <summary>The log index of the last keep-alive applied from the replicated log (0: none since the grant); persisted in the lease bucket.</summary>
        public long RenewedAtIndex { get; set; }

        /// <summary>Until when a report of this expired lease stands (0: not reported since its last renewal).</summary>
        public long ReportedUntilTimestamp { get; set; }

        public HashSet<byte[]> Keys { get; } = new(new KeyBytesComparer());

        /// <summary>Keep-alives of this lease that found it expired wait on it (see <see cref="KeepAlive"/>); null when none waits.</summary>
        public TaskCompletionSource<ExpiredLeaseOutcome>? ExpiredWaiter { get; set; }

        /// <summary>Tells the waiting keep-alives, if any, what became of the expired lease (under the lessor's lock).</summary>
        public void EndWait(ExpiredLeaseOutcome outcome)
        {
            var waiter = ExpiredWaiter;
            ExpiredWaiter = null;
            waiter?.TrySetResult(outcome);
        }
    }
}
