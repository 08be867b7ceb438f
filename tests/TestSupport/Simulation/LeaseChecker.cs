using System.Collections.Immutable;
using System.Globalization;
using EmbeddedRaft.TestSupport.Linearizability;

namespace EmbeddedRaft.TestSupport.Simulation;

/// <summary>
/// Checks leases against the client history and the committed history (<see cref="ReferenceHistory"/>):
/// no key of a revoked lease is visible in any read at or after the revocation's revision (from the
/// revoke's response, or for an expiry from the committed deletes), and no read shows a leased key the
/// committed history does not hold at that revision; at a revocation's revision no key attached to the
/// lease is left (the model checks that it took one revision); nothing is attached to a lease after it is gone; a
/// keep-alive or a put with the lease after its revocation was acknowledged (or after the store
/// answered "lease not found" for it) does not succeed.
/// </summary>
/// <remarks>
/// Assumes lease ids are never reused within a run (the simulator's clients choose fresh ids). Reads
/// may be linearizable or serializable: each is judged at the revision it was served at (its response's,
/// or the one it asked for). The rules that need the keys at a revision need a complete reference.
/// Stateless and thread-safe.
/// </remarks>
public static class LeaseChecker
{
    /// <summary>Checks the leases of <paramref name="history"/> against <paramref name="reference"/>.</summary>
    public static CheckResult Check(ReferenceHistory reference, IReadOnlyList<Operation<EtcdKvRequest, EtcdKvResponse>> history)
    {
        ArgumentNullException.ThrowIfNull(reference);
        ArgumentNullException.ThrowIfNull(history);
        var violations = new List<CheckViolation>();

        // Revocations acknowledged to a client: lease -> (revision, completion time).
        var revoked = new Dictionary<long, (long Revision, long CompletedTicks, int Index)>();

        // When each lease was first known gone: an acknowledged revoke or a "not found" answer after its grant.
        var goneSince = new Dictionary<long, (long Ticks, string Why)>();
        // Leases whose grant was acknowledged, and when: a "not found" proves a lease gone only when
        // asked after its grant completed (before, the grant may simply not have applied yet).
        var granted = new Dictionary<long, long>();
        for (int index = 0; index < history.Count; index++)
        {
            Operation<EtcdKvRequest, EtcdKvResponse> op = history[index];
            if (op.Input.IsSingleCall && op.Input.Success[0].Kind == EtcdKvOperationKind.LeaseGrant
                && op.Output is { Error: EtcdKvError.None } && op.CompleteTicks is long completed)
            {
                long lease = op.Input.Success[0].Lease;
                granted[lease] = granted.TryGetValue(lease, out long earlier) ? Math.Min(earlier, completed) : completed;
            }
        }

        for (int index = 0; index < history.Count; index++)
        {
            Operation<EtcdKvRequest, EtcdKvResponse> op = history[index];
            if (op.Output is not { } response || op.CompleteTicks is not long completed)
            {
                continue;
            }

            foreach ((long lease, string why) in LeasesShownGone(op, response, granted))
            {
                if (!goneSince.TryGetValue(lease, out var known) || completed < known.Ticks)
                {
                    goneSince[lease] = (completed, $"{why} (#{index}, completed at {completed.ToString(CultureInfo.InvariantCulture)})");
                }
            }

            if (op.Input.IsSingleCall && op.Input.Success[0] is { Kind: EtcdKvOperationKind.LeaseRevoke, Expiry: false } revoke && response.Error == EtcdKvError.None)
            {
                revoked.TryAdd(revoke.Lease, (response.Revision, completed, index));
            }
        }

        Dictionary<long, LeaseLife> lives = reference.IsComplete ? LeaseLives(reference) : [];
        foreach (long lease in goneSince.Keys)
        {
            if (lives.TryGetValue(lease, out LeaseLife? life))
            {
                life.Gone = true;
            }
        }

        int readsChecked = CheckReads(reference, history, revoked, lives, violations);
        CheckRevocations(reference, history, revoked, lives, violations);
        CheckGoneLeases(reference, goneSince, violations);
        CheckCallsAfterGone(history, goneSince, violations);

        string summary = string.Create(CultureInfo.InvariantCulture,
            $"{granted.Count} leases granted, {revoked.Count} revocations acknowledged, {goneSince.Count} leases seen gone, {readsChecked} leased keys read");
        return new CheckResult("lease", summary, violations);
    }

    /// <summary>The leases an answer shows to be gone: an acknowledged revoke, or "lease not found" for a granted lease.</summary>
    private static IEnumerable<(long Lease, string Why)> LeasesShownGone(Operation<EtcdKvRequest, EtcdKvResponse> op, EtcdKvResponse response, Dictionary<long, long> granted)
    {
        bool AfterGrant(long lease) => granted.TryGetValue(lease, out long grantedAt) && op.InvokeTicks > grantedAt;

        if (op.Input.IsSingleCall)
        {
            EtcdKvOperation call = op.Input.Success[0];
            if (call.Kind == EtcdKvOperationKind.LeaseRevoke && !call.Expiry && response.Error == EtcdKvError.None)
            {
                yield return (call.Lease, $"revoke of lease {call.Lease} acknowledged at revision {response.Revision.ToString(CultureInfo.InvariantCulture)}");
            }
            else if (call.Kind is EtcdKvOperationKind.LeaseRevoke or EtcdKvOperationKind.LeaseKeepAlive
                && response.Error == EtcdKvError.LeaseNotFound && AfterGrant(call.Lease))
            {
                yield return (call.Lease, $"{call} answered lease not found");
            }

            yield break;
        }

        if (response.Error == EtcdKvError.LeaseNotFound)
        {
            foreach (EtcdKvOperation put in op.Input.Success.Concat(op.Input.Failure).Where(o => o.Kind == EtcdKvOperationKind.Put && o.Lease != 0 && AfterGrant(o.Lease)))
            {
                // Only when the request has a single leased put can the refusal be pinned on that lease.
                if (op.Input.Success.Concat(op.Input.Failure).Count(o => o.Kind == EtcdKvOperationKind.Put && o.Lease != 0) == 1)
                {
                    yield return (put.Lease, $"{op.Input} answered lease not found");
                }
            }
        }
    }

    private static int CheckReads(
        ReferenceHistory reference,
        IReadOnlyList<Operation<EtcdKvRequest, EtcdKvResponse>> history,
        Dictionary<long, (long Revision, long CompletedTicks, int Index)> revoked,
        Dictionary<long, LeaseLife> lives,
        List<CheckViolation> violations)
    {
        int checkedReads = 0;
        for (int index = 0; index < history.Count; index++)
        {
            Operation<EtcdKvRequest, EtcdKvResponse> op = history[index];
            if (op.Output is not { Error: EtcdKvError.None } response || op.Input.IsSingleCall)
            {
                continue;
            }

            IReadOnlyList<EtcdKvOperation> branch = response.Succeeded ? op.Input.Success : op.Input.Failure;
            for (int i = 0; i < branch.Count && i < response.Results.Count; i++)
            {
                if (branch[i].Kind != EtcdKvOperationKind.Range)
                {
                    continue;
                }

                long at = branch[i].Revision != 0 ? branch[i].Revision : response.Revision;
                bool keysOnly = branch[i].KeysOnly;
                foreach (EtcdKeyValue kv in response.Results[i].Kvs.Where(kv => kv.Lease != 0))
                {
                    checkedReads++;
                    string read = string.Create(CultureInfo.InvariantCulture, $"#{index} client {op.ClientId} [{op.InvokeTicks}..{op.CompleteTicks}] {op.Input} read {kv} at revision {at}");
                    if (revoked.TryGetValue(kv.Lease, out var revocation) && at >= revocation.Revision)
                    {
                        violations.Add(new CheckViolation("lease.visible-after-revoke", string.Create(CultureInfo.InvariantCulture,
                            $"{read}, but lease {kv.Lease} was revoked at revision {revocation.Revision} (#{revocation.Index})")));
                        continue;
                    }

                    if (lives.TryGetValue(kv.Lease, out LeaseLife? life) && life.EmptiedForGood is long emptied && at >= emptied && life.Gone)
                    {
                        violations.Add(new CheckViolation("lease.visible-after-revoke", string.Create(CultureInfo.InvariantCulture,
                            $"{read}, but lease {kv.Lease} is gone and its last keys were deleted at revision {emptied}")));
                        continue;
                    }

                    if (reference.KeysAt(at) is { } keys && (!keys.TryGetValue(kv.Key, out EtcdKeyValue? committed) || (keysOnly ? committed with { Value = "" } : committed) != kv))
                    {
                        violations.Add(new CheckViolation("lease.read-vs-history", string.Create(CultureInfo.InvariantCulture,
                            $"{read}, but the committed history has {(committed is null ? "no such key" : committed.ToString())} there")));
                    }
                }
            }
        }

        return checkedReads;
    }

    /// <summary>An acknowledged revocation at V leaves no key of the lease at V, and nothing is attached to it after.</summary>
    private static void CheckRevocations(
        ReferenceHistory reference,
        IReadOnlyList<Operation<EtcdKvRequest, EtcdKvResponse>> history,
        Dictionary<long, (long Revision, long CompletedTicks, int Index)> revoked,
        Dictionary<long, LeaseLife> lives,
        List<CheckViolation> violations)
    {
        if (!reference.IsComplete)
        {
            return;
        }

        foreach ((long lease, var revocation) in revoked)
        {
            long v = revocation.Revision;
            if (!reference.Covers(v))
            {
                continue;
            }

            // Whether the revocation made revision v (it found keys) or answered the current one (it found
            // none), no key of the lease is left at v: revocation deletes them all, in one transaction.
            var remaining = reference.KeysAt(v)!.Values.Where(kv => kv.Lease == lease).ToList();
            string op = string.Create(CultureInfo.InvariantCulture, $"#{revocation.Index} {history[revocation.Index].Input} acknowledged at revision {v}");
            if (remaining.Count > 0)
            {
                violations.Add(new CheckViolation("lease.revoke-deletes", string.Create(CultureInfo.InvariantCulture,
                    $"{op}: keys of lease {lease} remain at revision {v}: {string.Join(", ", remaining)} (a revocation deletes them all at one revision; the committed history at {v}: {WatchStreamShape.Describe(reference.EventsAt(v))})")));
            }

            if (lives.TryGetValue(lease, out LeaseLife? life) && life.LastPut is long put && put > v)
            {
                violations.Add(new CheckViolation("lease.put-after-revoke", string.Create(CultureInfo.InvariantCulture,
                    $"{op}, yet the committed history attaches a key to lease {lease} at revision {put}")));
            }
        }
    }

    /// <summary>A lease known gone has no key attached at the end of the committed history.</summary>
    private static void CheckGoneLeases(ReferenceHistory reference, Dictionary<long, (long Ticks, string Why)> goneSince, List<CheckViolation> violations)
    {
        if (reference.KeysAt(reference.CoveredThrough) is not { } end)
        {
            return;
        }

        foreach ((long lease, var gone) in goneSince)
        {
            var remaining = end.Values.Where(kv => kv.Lease == lease).ToList();
            if (remaining.Count > 0)
            {
                violations.Add(new CheckViolation("lease.keys-outlive-lease", string.Create(CultureInfo.InvariantCulture,
                    $"lease {lease} is gone ({gone.Why}), but at revision {reference.CoveredThrough} the committed history still has {string.Join(", ", remaining)}")));
            }
        }
    }

    /// <summary>A keep-alive or a leased put invoked after the lease was known gone must not succeed.</summary>
    private static void CheckCallsAfterGone(IReadOnlyList<Operation<EtcdKvRequest, EtcdKvResponse>> history, Dictionary<long, (long Ticks, string Why)> goneSince, List<CheckViolation> violations)
    {
        for (int index = 0; index < history.Count; index++)
        {
            Operation<EtcdKvRequest, EtcdKvResponse> op = history[index];
            if (op.Output is not { Error: EtcdKvError.None } response)
            {
                continue;
            }

            IEnumerable<(long Lease, string Rule)> uses = op.Input.IsSingleCall
                ? op.Input.Success[0].Kind == EtcdKvOperationKind.LeaseKeepAlive ? [(op.Input.Success[0].Lease, "lease.keep-alive-after-revoke")] : []
                : (response.Succeeded ? op.Input.Success : op.Input.Failure).Where(o => o.Kind == EtcdKvOperationKind.Put && o.Lease != 0).Select(o => (o.Lease, "lease.put-after-revoke"));
            foreach ((long lease, string rule) in uses)
            {
                if (goneSince.TryGetValue(lease, out var gone) && op.InvokeTicks > gone.Ticks)
                {
                    violations.Add(new CheckViolation(rule, string.Create(CultureInfo.InvariantCulture,
                        $"#{index} client {op.ClientId} [{op.InvokeTicks}..{op.CompleteTicks}] {op.Input} -> {response} succeeded, but lease {lease} was gone before it began: {gone.Why}")));
                }
            }
        }
    }

    /// <summary>Per lease, from the committed history: its last attaching put, and the revision its keys were last all deleted at.</summary>
    private static Dictionary<long, LeaseLife> LeaseLives(ReferenceHistory reference)
    {
        var lives = new Dictionary<long, LeaseLife>();
        var attached = new Dictionary<long, HashSet<string>>();
        var leaseOf = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (long revision in reference.Revisions)
        {
            var touched = new HashSet<long>();
            foreach (CommittedEvent e in reference.EventsAt(revision))
            {
                if (leaseOf.Remove(e.Key, out long old))
                {
                    attached[old].Remove(e.Key);
                    touched.Add(old);
                }

                if (e.Type == CommittedEventType.Put && e.Kv.Lease != 0)
                {
                    leaseOf[e.Key] = e.Kv.Lease;
                    if (!attached.TryGetValue(e.Kv.Lease, out HashSet<string>? keys))
                    {
                        attached[e.Kv.Lease] = keys = new HashSet<string>(StringComparer.Ordinal);
                    }

                    keys.Add(e.Key);
                    if (!lives.TryGetValue(e.Kv.Lease, out LeaseLife? life))
                    {
                        lives[e.Kv.Lease] = life = new LeaseLife();
                    }

                    life.LastPut = revision;
                    life.EmptiedForGood = null;
                }
            }

            foreach (long lease in touched.Where(l => attached[l].Count == 0 && lives.ContainsKey(l)))
            {
                lives[lease].EmptiedForGood = revision;
            }
        }

        return lives;
    }

    /// <summary>What the committed history says of one lease.</summary>
    private sealed class LeaseLife
    {
        public long? LastPut { get; set; }

        /// <summary>The revision its attached keys last became none (null while some remain).</summary>
        public long? EmptiedForGood { get; set; }

        /// <summary>Whether the client history shows it gone.</summary>
        public bool Gone { get; set; }
    }
}
