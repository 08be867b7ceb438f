using System.Collections.Immutable;
using System.Globalization;
using EmbeddedRaft.TestSupport.Linearizability;

namespace EmbeddedRaft.TestSupport.Simulation;

/// <summary>
/// The committed history of the whole keyspace, revision by revision: the events of each revision from
/// <see cref="StartRevision"/> through <see cref="CoveredThrough"/>, each with the key as it was before
/// (prev_kv), and the keys as they stood after each revision. Built from the whole-keyspace watchers
/// the harness runs (<see cref="FromWatchers"/>), which must agree with one another; the reference the
/// watch, lease and acknowledgement checks compare against. Immutable.
/// </summary>
public sealed class ReferenceHistory
{
    private readonly SortedDictionary<long, IReadOnlyList<CommittedEvent>> _events;

    // Keys after each revision with events, when the reference is complete (starts at the store's first write).
    private readonly SortedList<long, ImmutableSortedDictionary<string, Linearizability.EtcdKeyValue>> _keysAfter = [];

    private ReferenceHistory(long startRevision, long coveredThrough, SortedDictionary<long, IReadOnlyList<CommittedEvent>> events, IReadOnlyList<(long From, long To)> holes)
    {
        StartRevision = startRevision;
        CoveredThrough = coveredThrough;
        Holes = holes;
        _events = events;
        if (IsComplete)
        {
            var keys = ImmutableSortedDictionary.Create<string, Linearizability.EtcdKeyValue>(StringComparer.Ordinal);
            foreach ((long revision, IReadOnlyList<CommittedEvent> atRevision) in events)
            {
                foreach (CommittedEvent e in atRevision)
                {
                    keys = e.Type == CommittedEventType.Put ? keys.SetItem(e.Key, e.Kv) : keys.Remove(e.Key);
                }

                _keysAfter.Add(revision, keys);
            }
        }
    }

    /// <summary>The first revision covered (every event from it on is known).</summary>
    public long StartRevision { get; }

    /// <summary>The last revision covered: every event through it is known; nothing is known above it.</summary>
    public long CoveredThrough { get; }

    /// <summary>Spans of revisions between <see cref="StartRevision"/> and <see cref="CoveredThrough"/> no watcher covered (a violation already reported; empty normally).</summary>
    public IReadOnlyList<(long From, long To)> Holes { get; }

    /// <summary>Whether the reference starts at the store's first write (revision 2 or earlier) and has no hole, so the keys at every covered revision are known.</summary>
    public bool IsComplete => StartRevision <= 2 && Holes.Count == 0;

    /// <summary>Every event, in revision order.</summary>
    public IEnumerable<CommittedEvent> Events => _events.Values.SelectMany(events => events);

    /// <summary>The revisions that have events, in order.</summary>
    public IEnumerable<long> Revisions => _events.Keys;

    /// <summary>Whether <paramref name="revision"/> is covered.</summary>
    public bool Covers(long revision) => revision >= StartRevision && revision <= CoveredThrough;

    /// <summary>The events of <paramref name="revision"/> (none for a revision without events or not covered).</summary>
    public IReadOnlyList<CommittedEvent> EventsAt(long revision) => _events.TryGetValue(revision, out IReadOnlyList<CommittedEvent>? events) ? events : [];

    /// <summary>The live keys after <paramref name="revision"/>, or null when unknown (the reference is not complete, or the revision is not covered).</summary>
    public ImmutableSortedDictionary<string, Linearizability.EtcdKeyValue>? KeysAt(long revision)
    {
        if (!IsComplete || revision > CoveredThrough)
        {
            return null;
        }

        // The newest revision with events at or below it.
        int low = 0;
        int high = _keysAfter.Count - 1;
        int found = -1;
        while (low <= high)
        {
            int mid = (low + high) / 2;
            if (_keysAfter.Keys[mid] <= revision)
            {
                found = mid;
                low = mid + 1;
            }
            else
            {
                high = mid - 1;
            }
        }

        return found < 0 ? ImmutableSortedDictionary.Create<string, Linearizability.EtcdKeyValue>(StringComparer.Ordinal) : _keysAfter.Values[found];
    }

    /// <summary>A reference from known events (for tests, or another source than watchers).</summary>
    /// <exception cref="ArgumentException">An event outside [<paramref name="startRevision"/>, <paramref name="coveredThrough"/>] or the events out of revision order.</exception>
    public static ReferenceHistory FromEvents(long startRevision, long coveredThrough, IEnumerable<CommittedEvent> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        var byRevision = new SortedDictionary<long, IReadOnlyList<CommittedEvent>>();
        long last = 0;
        foreach (CommittedEvent e in events)
        {
            if (e.Revision < startRevision || e.Revision > coveredThrough || e.Revision < last)
            {
                throw new ArgumentException($"Event {e} is out of order or outside [{startRevision}, {coveredThrough}].", nameof(events));
            }

            last = e.Revision;
            if (!byRevision.TryGetValue(e.Revision, out IReadOnlyList<CommittedEvent>? list))
            {
                byRevision[e.Revision] = list = new List<CommittedEvent>();
            }

            ((List<CommittedEvent>)list).Add(e);
        }

        return new ReferenceHistory(startRevision, coveredThrough, byRevision, []);
    }

    /// <summary>
    /// The reference from whole-keyspace watchers (Key "\0", RangeEnd "\0", prev_kv, no filters; several
    /// per run, on different members, some resumed after crashes), and whether they are sound: every
    /// stream keeps its shape (<see cref="WatchChecker"/>'s order rules); where two streams cover the same
    /// revision they report exactly the same events (so each is a prefix of the longest, whatever member
    /// it ran on); the union covers one unbroken span of revisions, and every revision in it from 2 on
    /// has events (a revision is only made by a change); and the events agree with the keys before them:
    /// prev_kv is the key as it stood, a put's create revision and version follow from it, a delete
    /// deletes a live key.
    /// </summary>
    /// <remarks>
    /// A prev_kv is not guaranteed: etcd leaves it out when the event's revision - 1 is compacted by the
    /// time the event is sent (<see cref="CommittedEvent.MatchesAllowingCompactedPrevKv"/>). So where
    /// <paramref name="history"/> asked for a compaction at or above an event's revision, a stream may
    /// lack that event's prev_kv while another has it (the reference keeps the one with it), and an
    /// event without it is not held against the keys.
    /// </remarks>
    /// <param name="wholeKeyspace">The whole-keyspace watchers.</param>
    /// <param name="history">The client history, to know which compactions were asked for; null allows no prev_kv to be missing.</param>
    /// <exception cref="ArgumentException">A watcher is not a whole-keyspace prev_kv watcher, or there is none.</exception>
    public static (ReferenceHistory Reference, CheckResult Soundness) FromWatchers(
        IReadOnlyList<WatchObservation> wholeKeyspace, IReadOnlyList<Operation<EtcdKvRequest, EtcdKvResponse>>? history = null)
    {
        long compactedThrough = WatchChecker.CompactedThrough(history);
        ArgumentNullException.ThrowIfNull(wholeKeyspace);
        if (wholeKeyspace.Count == 0)
        {
            throw new ArgumentException("A reference needs at least one whole-keyspace watcher.", nameof(wholeKeyspace));
        }

        var violations = new List<CheckViolation>();
        var merged = new SortedDictionary<long, (IReadOnlyList<CommittedEvent> Events, string Source)>();
        var spans = new List<(long From, long To, string Id)>();
        foreach (WatchObservation watch in wholeKeyspace)
        {
            if (watch.RangeEnd != "\0" || !watch.PrevKv || watch.NoPut || watch.NoDelete || !watch.Covers("\0"))
            {
                throw new ArgumentException($"{watch} is not a whole-keyspace watcher (Key \"\\0\", RangeEnd \"\\0\", PrevKv, no filters).", nameof(wholeKeyspace));
            }

            SortedDictionary<long, List<CommittedEvent>> events = WatchStreamShape.Check(watch, violations);
            long covered = watch.CoveredThrough;
            if (covered < watch.StartRevision)
            {
                continue;
            }

            spans.Add((watch.StartRevision, covered, watch.WatcherId));
            for (long revision = watch.StartRevision; revision <= covered; revision++)
            {
                IReadOnlyList<CommittedEvent> mine = events.TryGetValue(revision, out List<CommittedEvent>? at) ? at : [];
                if (merged.TryGetValue(revision, out var theirs))
                {
                    if (WatchChecker.SameAllowingCompactedPrevKv(theirs.Events, mine, compactedThrough))
                    {
                        // Keep the richer of the two: a prev_kv one stream has and the other lost to compaction.
                        merged[revision] = (theirs.Events.Zip(mine).Select(pair => pair.First.PrevKv is null ? pair.Second : pair.First).ToList(), theirs.Source);
                    }
                    else if (WatchChecker.SameAllowingCompactedPrevKv(mine, theirs.Events, compactedThrough))
                    {
                        // theirs lacks prev_kvs (lost to compaction) that mine has.
                        merged[revision] = (mine, watch.WatcherId);
                    }
                    else
                    {
                        violations.Add(new CheckViolation("reference.disagree", string.Create(CultureInfo.InvariantCulture,
                            $"whole-keyspace watchers disagree at revision {revision}: {theirs.Source} saw {WatchStreamShape.Describe(theirs.Events)}; {watch.WatcherId} saw {WatchStreamShape.Describe(mine)}")));
                    }
                }
                else
                {
                    merged[revision] = (mine, watch.WatcherId);
                }
            }
        }

        long start = spans.Count == 0 ? 1 : spans.Min(s => s.From);
        long end = start - 1;
        var holes = new List<(long From, long To)>();
        foreach ((long from, long to, string id) in spans.OrderBy(s => s.From))
        {
            if (from > end + 1)
            {
                holes.Add((end + 1, from - 1));
                violations.Add(new CheckViolation("reference.hole", string.Create(CultureInfo.InvariantCulture,
                    $"no whole-keyspace watcher covered revisions {end + 1}..{from - 1} (the next, {id}, starts at {from})")));
            }

            end = Math.Max(end, to);
        }

        var byRevision = new SortedDictionary<long, IReadOnlyList<CommittedEvent>>();
        foreach ((long revision, var entry) in merged)
        {
            if (entry.Events.Count > 0)
            {
                byRevision[revision] = entry.Events;
            }
            else if (revision >= 2)
            {
                violations.Add(new CheckViolation("reference.contiguous", string.Create(CultureInfo.InvariantCulture,
                    $"revision {revision} has no event in the reference ({entry.Source} covered it), yet revisions are only made by changes")));
            }
        }

        var reference = new ReferenceHistory(start, end, byRevision, holes);
        CheckEventsAgainstKeys(reference, compactedThrough, violations);
        string summary = string.Create(CultureInfo.InvariantCulture,
            $"{wholeKeyspace.Count} whole-keyspace watchers, revisions {start}..{end}, {byRevision.Values.Sum(e => e.Count)} events");
        return (reference, new CheckResult("reference", summary, violations));
    }

    /// <summary>Replays the reference: each event must fit the key as it stood (when known: always for a complete reference).</summary>
    private static void CheckEventsAgainstKeys(ReferenceHistory reference, long compactedThrough, List<CheckViolation> violations)
    {
        var known = new Dictionary<string, Linearizability.EtcdKeyValue?>(StringComparer.Ordinal);
        bool fromEmpty = reference.StartRevision <= 2;
        int hole = 0;
        foreach (CommittedEvent e in reference.Events)
        {
            if (hole < reference.Holes.Count && e.Revision > reference.Holes[hole].To)
            {
                // What happened in a hole is unknown: start learning again (the hole is reported already).
                known.Clear();
                fromEmpty = false;
                hole++;
            }

            bool lostPrevKv = e.PrevKvMayBeCompacted(compactedThrough);
            Linearizability.EtcdKeyValue? before;
            if (!known.TryGetValue(e.Key, out before))
            {
                if (lostPrevKv && !fromEmpty)
                {
                    // A partial reference learns a key's past from its first prev_kv: this one was lost to a compaction.
                    known[e.Key] = e.Type == CommittedEventType.Put ? e.Kv : null;
                    continue;
                }

                // A reference from the empty store knows every key; a partial one learns a key's past from its first prev_kv.
                before = fromEmpty ? null : e.PrevKv;
            }

            string? problem = null;
            if (!Equals(e.PrevKv, before) && !(lostPrevKv && before is not null))
            {
                problem = $"its prev_kv should be {before?.ToString() ?? "none"}";
            }
            else if (e.Type == CommittedEventType.Delete && before is null)
            {
                problem = "it deletes a key that does not exist";
            }
            else if (e.Type == CommittedEventType.Put
                && (e.Kv.CreateRevision != (before?.CreateRevision ?? e.Revision) || e.Kv.Version != (before?.Version ?? 0) + 1))
            {
                problem = string.Create(CultureInfo.InvariantCulture,
                    $"its create revision and version should be {before?.CreateRevision ?? e.Revision} and {(before?.Version ?? 0) + 1}");
            }

            if (problem is not null)
            {
                violations.Add(new CheckViolation("reference.inconsistent", string.Create(CultureInfo.InvariantCulture, $"revision {e.Revision}: {e}: {problem}")));
            }

            known[e.Key] = e.Type == CommittedEventType.Put ? e.Kv : null;
        }
    }
}
