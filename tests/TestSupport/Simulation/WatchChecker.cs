using System.Globalization;
using EmbeddedRaft.TestSupport.Linearizability;

namespace EmbeddedRaft.TestSupport.Simulation;

/// <summary>
/// Checks watch streams against the committed history (<see cref="ReferenceHistory"/>): every watcher's
/// events equal the history of its range from its start revision, filtered and with or without prev_kv
/// as it asked, in order, with no gap (its header revisions promise every event through them) and no
/// duplicate; a resumed watcher continues exactly where the one it resumes stopped; a watcher told
/// "compacted" needed a revision at or below a real compaction. And the cross-check the other way:
/// every write a client saw acknowledged is in the history at the revision its response named.
/// </summary>
/// <remarks>Stateless and thread-safe.</remarks>
public static class WatchChecker
{
    /// <summary>How many differing revisions are reported per watcher (the first ones say enough).</summary>
    private const int MismatchesShownPerWatcher = 3;

    /// <summary>Checks <paramref name="watchers"/> against <paramref name="reference"/>.</summary>
    /// <param name="reference">The committed history (from the whole-keyspace watchers).</param>
    /// <param name="watchers">Every observed watch stream (the whole-keyspace ones may be included: they are checked the same way).</param>
    /// <param name="history">The client history, to know which compactions were asked for; null skips that part of the compaction rule.</param>
    public static CheckResult Check(ReferenceHistory reference, IReadOnlyList<WatchObservation> watchers, IReadOnlyList<Operation<EtcdKvRequest, EtcdKvResponse>>? history = null)
    {
        ArgumentNullException.ThrowIfNull(reference);
        ArgumentNullException.ThrowIfNull(watchers);
        var violations = new List<CheckViolation>();
        var byId = new Dictionary<string, WatchObservation>(StringComparer.Ordinal);
        foreach (WatchObservation watch in watchers)
        {
            if (!byId.TryAdd(watch.WatcherId, watch))
            {
                throw new ArgumentException($"Two watch observations are named {watch.WatcherId}.", nameof(watchers));
            }
        }

        HashSet<long>? compactions = history is null ? null : RequestedCompactions(history);
        long compactedThrough = compactions is null || compactions.Count == 0 ? 0 : compactions.Max();
        long eventsChecked = 0;
        long unverifiable = 0;
        foreach (WatchObservation watch in watchers)
        {
            SortedDictionary<long, List<CommittedEvent>> seen = WatchStreamShape.Check(watch, violations);
            (long checkedHere, long beyond) = CheckContent(reference, watch, seen, compactedThrough, violations);
            eventsChecked += checkedHere;
            unverifiable += beyond;
            CheckResume(watch, byId, violations);
            CheckCompacted(watch, compactions, violations);
        }

        string summary = string.Create(CultureInfo.InvariantCulture,
            $"{watchers.Count} watch streams, {eventsChecked} events compared with the reference (revisions {reference.StartRevision}..{reference.CoveredThrough}), {unverifiable} beyond it");
        return new CheckResult("watch", summary, violations);
    }

    /// <summary>
    /// Every acknowledged write is in <paramref name="reference"/> at its response's revision, and that
    /// revision holds nothing else: a put's key with its value and lease, a delete's deleted count of keys
    /// of its range; a transaction's writes together. A revision above <see cref="ReferenceHistory.CoveredThrough"/>
    /// is a violation too (an acknowledged write the committed history never showed): let the reference
    /// watchers catch up to the final revision before checking.
    /// </summary>
    public static CheckResult CheckAcknowledgedWrites(ReferenceHistory reference, IReadOnlyList<Operation<EtcdKvRequest, EtcdKvResponse>> history)
    {
        ArgumentNullException.ThrowIfNull(reference);
        ArgumentNullException.ThrowIfNull(history);
        var violations = new List<CheckViolation>();
        int checkedWrites = 0;
        for (int index = 0; index < history.Count; index++)
        {
            Operation<EtcdKvRequest, EtcdKvResponse> op = history[index];
            if (op.Output is not { Error: EtcdKvError.None } response || op.Input.IsSingleCall)
            {
                continue;
            }

            IReadOnlyList<EtcdKvOperation> branch = response.Succeeded ? op.Input.Success : op.Input.Failure;
            var expected = new List<string>();
            long deletes = 0;
            var deleteRanges = new List<EtcdKvOperation>();
            for (int i = 0; i < branch.Count && i < response.Results.Count; i++)
            {
                EtcdKvOperation write = branch[i];
                if (write.Kind == EtcdKvOperationKind.Put)
                {
                    expected.Add($"PUT {write.Key}={write.Value}{(write.Lease != 0 ? string.Create(CultureInfo.InvariantCulture, $" lease {write.Lease}") : "")}");
                }
                else if (write.Kind == EtcdKvOperationKind.DeleteRange && response.Results[i].Deleted > 0)
                {
                    deletes += response.Results[i].Deleted;
                    deleteRanges.Add(write);
                }
            }

            if (expected.Count == 0 && deletes == 0)
            {
                continue;
            }

            checkedWrites++;
            long revision = response.Revision;
            string what = string.Create(CultureInfo.InvariantCulture, $"#{index} client {op.ClientId} [{op.InvokeTicks}..{op.CompleteTicks}] {op.Input} acknowledged at revision {revision}");
            if (revision > reference.CoveredThrough || revision < reference.StartRevision)
            {
                if (revision > reference.CoveredThrough)
                {
                    violations.Add(new CheckViolation("ack.missing", $"{what}, but the committed history ends at revision {reference.CoveredThrough}"));
                }

                continue;
            }

            IReadOnlyList<CommittedEvent> events = reference.EventsAt(revision);
            var puts = events.Where(e => e.Type == CommittedEventType.Put)
                .Select(e => $"PUT {e.Key}={e.Kv.Value}{(e.Kv.Lease != 0 ? string.Create(CultureInfo.InvariantCulture, $" lease {e.Kv.Lease}") : "")}")
                .ToList();
            var deleted = events.Where(e => e.Type == CommittedEventType.Delete).ToList();
            bool putsMatch = expected.Order(StringComparer.Ordinal).SequenceEqual(puts.Order(StringComparer.Ordinal));
            bool deletesMatch = deleted.Count == deletes && deleted.All(e => deleteRanges.Any(range => InRange(range, e.Key)));
            if (!putsMatch || !deletesMatch)
            {
                violations.Add(new CheckViolation("ack.mismatch", string.Create(CultureInfo.InvariantCulture,
                    $"{what}: expected there {string.Join(", ", expected)}{(deletes > 0 ? $" and {deletes} delete(s) in its range" : "")}; the committed history has {WatchStreamShape.Describe(events)}")));
            }
        }

        return new CheckResult("ack", string.Create(CultureInfo.InvariantCulture, $"{checkedWrites} acknowledged writes found in the reference"), violations);
    }

    private static (long Checked, long Beyond) CheckContent(
        ReferenceHistory reference, WatchObservation watch, SortedDictionary<long, List<CommittedEvent>> seen, long compactedThrough, List<CheckViolation> violations)
    {
        long from = Math.Max(watch.StartRevision, reference.StartRevision);
        long to = Math.Min(watch.CoveredThrough, reference.CoveredThrough);
        long compared = 0;
        int mismatches = 0;
        for (long revision = from; revision <= to; revision++)
        {
            List<CommittedEvent> expected = reference.EventsAt(revision).Where(e => Wants(watch, e)).Select(e => watch.PrevKv ? e : e.WithoutPrevKv()).ToList();
            IReadOnlyList<CommittedEvent> got = seen.TryGetValue(revision, out List<CommittedEvent>? at) ? at : [];
            compared += got.Count;
            if (SameAllowingCompactedPrevKv(expected, got, compactedThrough))
            {
                continue;
            }

            if (mismatches++ < MismatchesShownPerWatcher)
            {
                string rule = got.Count == 0 ? "watch.gap" : expected.Count == 0 ? "watch.extra" : "watch.mismatch";
                violations.Add(new CheckViolation(rule, string.Create(CultureInfo.InvariantCulture,
                    $"{watch} at revision {revision}: expected {WatchStreamShape.Describe(expected)}; seen {WatchStreamShape.Describe(got)}")));
            }
        }

        long beyond = seen.Where(pair => pair.Key > reference.CoveredThrough).Sum(pair => pair.Value.Count);
        return (compared, beyond);
    }

    private static void CheckResume(WatchObservation watch, Dictionary<string, WatchObservation> byId, List<CheckViolation> violations)
    {
        if (watch.ResumedFrom is null)
        {
            return;
        }

        if (!byId.TryGetValue(watch.ResumedFrom, out WatchObservation? previous))
        {
            violations.Add(new CheckViolation("watch.resume", $"{watch} resumes {watch.ResumedFrom}, which was not observed"));
            return;
        }

        // Resuming from anywhere in (last event delivered, last revision covered + 1] loses nothing and
        // repeats nothing; after a compaction, the compact revision + 1 is the earliest it can restart.
        long lastEvent = previous.Responses.SelectMany(r => r.Events).Select(e => e.Revision).DefaultIfEmpty(previous.StartRevision - 1).Max();
        long latest = previous.End == WatchEnd.Compacted ? Math.Max(previous.CoveredThrough, previous.CompactRevision) + 1 : previous.CoveredThrough + 1;
        if (watch.StartRevision <= lastEvent)
        {
            violations.Add(new CheckViolation("watch.resume", string.Create(CultureInfo.InvariantCulture,
                $"{watch} resumes {previous.WatcherId} from {watch.StartRevision}, but that one already delivered revision {lastEvent}: duplicates")));
        }
        else if (watch.StartRevision > latest)
        {
            violations.Add(new CheckViolation("watch.resume", string.Create(CultureInfo.InvariantCulture,
                $"{watch} resumes {previous.WatcherId} from {watch.StartRevision}, but that one covered only through {latest - 1}: a gap")));
        }
    }

    private static void CheckCompacted(WatchObservation watch, HashSet<long>? compactions, List<CheckViolation> violations)
    {
        if (watch.End != WatchEnd.Compacted)
        {
            return;
        }

        long next = watch.CoveredThrough + 1;
        if (next > watch.CompactRevision)
        {
            violations.Add(new CheckViolation("watch.compacted", string.Create(CultureInfo.InvariantCulture,
                $"{watch} was told compacted at {watch.CompactRevision}, but it needed revision {next} next, above it")));
        }

        if (compactions is not null && !compactions.Contains(watch.CompactRevision))
        {
            violations.Add(new CheckViolation("watch.compacted", string.Create(CultureInfo.InvariantCulture,
                $"{watch} was told compacted at {watch.CompactRevision}, but no client asked for a compaction there (asked: {string.Join(", ", compactions.Order())})")));
        }
    }

    /// <summary>
    /// Whether <paramref name="got"/> is <paramref name="expected"/> as a watch may deliver it: event by
    /// event equal, or without a previous key a compaction may have removed first (<see cref="CommittedEvent.MatchesAllowingCompactedPrevKv"/>).
    /// </summary>
    internal static bool SameAllowingCompactedPrevKv(IReadOnlyList<CommittedEvent> expected, IReadOnlyList<CommittedEvent> got, long compactedThrough) =>
        expected.Count == got.Count && expected.Zip(got).All(pair => pair.First.MatchesAllowingCompactedPrevKv(pair.Second, compactedThrough));

    /// <summary>The highest compaction revision the clients asked for (0 when none, or no history).</summary>
    internal static long CompactedThrough(IReadOnlyList<Operation<EtcdKvRequest, EtcdKvResponse>>? history)
    {
        HashSet<long> compactions = history is null ? [] : RequestedCompactions(history);
        return compactions.Count == 0 ? 0 : compactions.Max();
    }

    private static HashSet<long> RequestedCompactions(IReadOnlyList<Operation<EtcdKvRequest, EtcdKvResponse>> history) =>
        history.Where(op => op.Input.IsSingleCall && op.Input.Success[0].Kind == EtcdKvOperationKind.Compact && (op.Output is null || op.Output.Error == EtcdKvError.None))
            .Select(op => op.Input.Success[0].Revision)
            .ToHashSet();

    private static bool Wants(WatchObservation watch, CommittedEvent e) =>
        watch.Covers(e.Key) && !(watch.NoPut && e.Type == CommittedEventType.Put) && !(watch.NoDelete && e.Type == CommittedEventType.Delete);

    private static bool InRange(EtcdKvOperation range, string key) =>
        range.RangeEnd is null ? key == range.Key
        : string.CompareOrdinal(key, range.Key) >= 0 && (range.RangeEnd == "\0" || string.CompareOrdinal(key, range.RangeEnd) < 0);
}
