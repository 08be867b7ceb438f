using System.Globalization;

namespace EmbeddedRaft.TestSupport.Simulation;

/// <summary>
/// The rules one watch stream must keep on its own, whatever the history (the store's WatchStream
/// guarantees): header revisions never go back; every event is at or after the start revision, above
/// the previous response's header revision and at or below its own response's; event revisions never go
/// back and one key appears at most once per revision (etcd refuses a transaction writing a key twice).
/// </summary>
internal static class WatchStreamShape
{
    /// <summary>The stream's events by revision, adding a violation for each broken rule (at most a few per stream).</summary>
    public static SortedDictionary<long, List<CommittedEvent>> Check(WatchObservation watch, List<CheckViolation> violations)
    {
        var byRevision = new SortedDictionary<long, List<CommittedEvent>>();
        long previousHeader = watch.StartRevision - 1;
        long lastEvent = 0;
        int found = 0;
        foreach (WatchResponseObservation response in watch.Responses)
        {
            if (response.HeaderRevision < previousHeader)
            {
                Add(ref found, violations, "watch.order", $"{watch.WatcherId}: header revision {response.HeaderRevision} after {previousHeader} (went back)");
            }

            foreach (CommittedEvent e in response.Events)
            {
                if (e.Revision < watch.StartRevision)
                {
                    Add(ref found, violations, "watch.before-start", $"{watch.WatcherId}: event {e} is before the start revision {watch.StartRevision}");
                }
                else if (e.Revision <= previousHeader)
                {
                    Add(ref found, violations, "watch.duplicate", $"{watch.WatcherId}: event {e} at or below revision {previousHeader}, which an earlier response already covered");
                }
                else if (e.Revision > response.HeaderRevision)
                {
                    Add(ref found, violations, "watch.order", $"{watch.WatcherId}: event {e} above its response's header revision {response.HeaderRevision}");
                }
                else if (e.Revision < lastEvent)
                {
                    Add(ref found, violations, "watch.order", $"{watch.WatcherId}: event {e} after an event at revision {lastEvent} (out of order)");
                }

                if (!byRevision.TryGetValue(e.Revision, out List<CommittedEvent>? events))
                {
                    byRevision[e.Revision] = events = [];
                }

                if (events.Any(other => other.Key == e.Key))
                {
                    Add(ref found, violations, "watch.duplicate", $"{watch.WatcherId}: key '{e.Key}' twice at revision {e.Revision}: {e}");
                }

                events.Add(e);
                lastEvent = Math.Max(lastEvent, e.Revision);
            }

            previousHeader = Math.Max(previousHeader, response.HeaderRevision);
        }

        return byRevision;
    }

    private static void Add(ref int found, List<CheckViolation> violations, string rule, string detail)
    {
        // A stream broken once is usually broken everywhere after: the first few say enough.
        if (found++ < 3)
        {
            violations.Add(new CheckViolation(rule, detail));
        }
    }

    public static string Describe(IEnumerable<CommittedEvent> events)
    {
        string text = string.Join(", ", events);
        return text.Length == 0 ? "(none)" : text;
    }

    public static string Revision(long revision) => revision.ToString(CultureInfo.InvariantCulture);
}
