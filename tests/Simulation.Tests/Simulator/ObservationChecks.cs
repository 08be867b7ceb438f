using System.Globalization;
using EmbeddedRaft.TestSupport.Linearizability;

namespace EmbeddedRaft.Simulation.Tests.Simulator;

/// <summary>
/// The end-of-run checks on what clients observed, apart from linearizability: the watchers'
/// streams (each in order, no duplicate, no gap but at a compaction, all agreeing revision by
/// revision: together the reference history of committed events), serializable reads (each equal
/// to the reference state at the revision it answered with), and leases (no lease revoked by
/// expiry while a keep-alive promised it more time).
/// </summary>
internal static class ObservationChecks
{
    /// <summary>The reference history: every revision's events as the watchers received them, and up to which revision it has no gap.</summary>
    public sealed record Reference(IReadOnlyDictionary<long, IReadOnlyList<ObservedEvent>> Events, long CompleteThrough, IReadOnlyDictionary<long, long> FirstSeenTicks);

    public static Reference BuildReference(ClientHistory history, List<string> violations)
    {
        var byRevision = new Dictionary<long, IReadOnlyList<ObservedEvent>>();
        var firstSeen = new Dictionary<long, long>();
        for (int w = 0; w < history.WatchStreams.Count; w++)
        {
            var stream = history.WatchStreams[w];
            long lastRevision = 0;
            int i = 0;
            while (i < stream.Count)
            {
                var (first, received) = stream[i];
                if (first.Revision < 0)
                {
                    // Compaction marker: the stream resumed after a gap.
                    lastRevision = 0;
                    i++;
                    continue;
                }

                // One revision's events arrive together, in order.
                long revision = first.Revision;
                var events = new List<ObservedEvent>();
                while (i < stream.Count && stream[i].Event.Revision == revision)
                {
                    events.Add(stream[i].Event);
                    i++;
                }

                if (revision <= lastRevision)
                {
                    violations.Add(string.Create(CultureInfo.InvariantCulture, $"watcher w{w} received revision {revision} after revision {lastRevision} (out of order or duplicated)"));
                    continue;
                }

                lastRevision = revision;
                if (byRevision.TryGetValue(revision, out var known))
                {
                    if (!known.SequenceEqual(events))
                    {
                        violations.Add(string.Create(CultureInfo.InvariantCulture, $"watchers disagree at revision {revision}: [{string.Join(", ", known)}] vs w{w}'s [{string.Join(", ", events)}]"));
                    }

                    firstSeen[revision] = Math.Min(firstSeen[revision], received);
                }
                else
                {
                    byRevision[revision] = events;
                    firstSeen[revision] = received;
                }
            }
        }

        long complete = 1;
        while (byRevision.ContainsKey(complete + 1))
        {
            complete++;
        }

        return new Reference(byRevision, complete, firstSeen);
    }

    /// <summary>
    /// Resolves indeterminate writes with the reference: a put (or a compare-and-put) whose unique
    /// value the watchers saw took effect at that event's revision, at some time between its
    /// invocation and the first time a watcher received it — it becomes a completed operation with
    /// exactly that answer. One whose value never appeared, when the reference has no gap through
    /// <paramref name="finalRevision"/>, never took effect (or, a compare-and-put whose compare
    /// failed, changed nothing) and is left out. Anything else stays indeterminate. This keeps the
    /// linearizability search small (each indeterminate write may take effect anywhere after its
    /// invocation, which multiplies the orders to try) without weakening it: a resolved operation
    /// claims only what the committed history shows.
    /// </summary>
    public static List<Operation<EtcdKvRequest, EtcdKvResponse>> ResolveIndeterminate(IReadOnlyList<Operation<EtcdKvRequest, EtcdKvResponse>> operations, Reference reference, long finalRevision)
    {
        var puts = new Dictionary<(string Key, string Value), long>();
        foreach (var (revision, events) in reference.Events)
        {
            foreach (var e in events.Where(e => !e.IsDelete))
            {
                puts.TryAdd((e.Key, e.Value), revision);
            }
        }

        bool complete = finalRevision > 0 && reference.CompleteThrough >= finalRevision;
        var resolved = new List<Operation<EtcdKvRequest, EtcdKvResponse>>(operations.Count);
        foreach (var op in operations)
        {
            var put = op.Input.Success.Count == 1 && op.Input.Success[0].Kind == EtcdKvOperationKind.Put ? op.Input.Success[0] : null;
            if (!op.Indeterminate || put is null)
            {
                resolved.Add(op);
                continue;
            }

            if (puts.TryGetValue((put.Key, put.Value!), out long at))
            {
                long seen = Math.Max(op.InvokeTicks, reference.FirstSeenTicks[at]);
                resolved.Add(Operation.Completed(op.ClientId, op.InvokeTicks, seen, op.Input, new EtcdKvResponse(at, true, [EtcdKvOperationResult.PutDone])));
            }
            else if (!complete)
            {
                resolved.Add(op);
            }
        }

        return resolved;
    }

    /// <summary>Each serializable read answered within the reference's complete range equals the reference state at its revision.</summary>
    public static void CheckSerializableReads(ClientHistory history, Reference reference, List<string> violations)
    {
        var reads = history.SerializableReads.Where(r => r.Response.Revision <= reference.CompleteThrough).OrderBy(r => r.Response.Revision).ToList();
        var state = new Dictionary<string, EtcdKeyValue>(StringComparer.Ordinal);
        long applied = 1;
        foreach (var read in reads)
        {
            while (applied < read.Response.Revision)
            {
                applied++;
                foreach (var e in reference.Events[applied])
                {
                    if (e.IsDelete)
                    {
                        state.Remove(e.Key);
                    }
                    else
                    {
                        state[e.Key] = new EtcdKeyValue(e.Key, e.Value, e.CreateRevision, e.ModRevision, e.Version);
                    }
                }
            }

            var op = read.Request.Success[0];
            var expected = state.Values.Where(kv => op.RangeEnd is null ? kv.Key == op.Key : string.CompareOrdinal(kv.Key, op.Key) >= 0 && string.CompareOrdinal(kv.Key, op.RangeEnd) < 0)
                .OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
            if (!expected.SequenceEqual(read.Response.Results[0].Kvs))
            {
                violations.Add(string.Create(CultureInfo.InvariantCulture, $"serializable read by c{read.ClientId} on m{read.MemberId} ({read.Request}) answered {read.Response}, but the committed state at revision {read.Response.Revision} is [{string.Join(", ", expected)}]"));
            }
        }
    }

    /// <summary>
    /// A lease lives at least its TTL after its grant and after each keep-alive that found it (each
    /// took effect after it was invoked): a keep-alive answering "not found", or a watcher seeing the
    /// lease's key deleted, before that — with no revoke asked for — is an early expiry.
    /// </summary>
    public static void CheckLeases(ClientHistory history, Reference reference, IReadOnlyDictionary<long, long> revokeInvokedTicks, List<string> violations)
    {
        foreach (var group in history.KeepAlives.GroupBy(k => k.LeaseId))
        {
            long leaseId = group.Key;
            var leased = history.LeaseKeys.FirstOrDefault(l => l.LeaseId == leaseId);
            long aliveUntil = leased?.GrantInvokeTicks ?? 0;
            long ttlTicks = TimeSpan.FromSeconds(group.First().TtlSeconds).Ticks;
            aliveUntil += ttlTicks;
            foreach (var keepAlive in group.OrderBy(k => k.InvokeTicks))
            {
                if (keepAlive.Found)
                {
                    aliveUntil = Math.Max(aliveUntil, keepAlive.InvokeTicks + ttlTicks);
                }
                else if (keepAlive.CompleteTicks < aliveUntil && !(revokeInvokedTicks.TryGetValue(leaseId, out long revoked) && revoked <= keepAlive.CompleteTicks))
                {
                    violations.Add(string.Create(CultureInfo.InvariantCulture, $"lease {leaseId:x} expired early: a keep-alive answered 'not found' at {TimeSpan.FromTicks(keepAlive.CompleteTicks).TotalMilliseconds:0} ms, but it was promised life until {TimeSpan.FromTicks(aliveUntil).TotalMilliseconds:0} ms"));
                    break;
                }
            }

            if (leased is not null)
            {
                foreach (var (revision, events) in reference.Events)
                {
                    if (events.Any(e => e.IsDelete && e.Key == leased.Key) && reference.FirstSeenTicks[revision] < aliveUntil
                        && !(revokeInvokedTicks.TryGetValue(leaseId, out long revoked) && revoked <= reference.FirstSeenTicks[revision]))
                    {
                        violations.Add(string.Create(CultureInfo.InvariantCulture, $"lease {leaseId:x} expired early: its key {leased.Key} was deleted at revision {revision}, seen at {TimeSpan.FromTicks(reference.FirstSeenTicks[revision]).TotalMilliseconds:0} ms, but the lease was promised life until {TimeSpan.FromTicks(aliveUntil).TotalMilliseconds:0} ms"));
                    }
                }
            }
        }
    }
}
