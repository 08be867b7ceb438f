using EmbeddedRaft.TestSupport.Linearizability;
using EmbeddedRaft.TestSupport.Simulation;

namespace EmbeddedRaft.Simulation.Tests.Checkers;

/// <summary>Builds watch observations the way a correct store delivers them, from a list of committed events.</summary>
internal static class WatchFixtures
{
    /// <summary>
    /// What a correct watch of [key, rangeEnd) from <paramref name="start"/> receives through
    /// <paramref name="through"/>: the events of its range (filtered, prev_kv kept or dropped), one
    /// response per revision with events, then a progress notification at <paramref name="through"/>.
    /// </summary>
    public static WatchObservation Observe(
        IEnumerable<CommittedEvent> committed,
        string id,
        string key,
        string? rangeEnd,
        long start,
        long through,
        bool prevKv = false,
        bool noPut = false,
        bool noDelete = false,
        WatchEnd end = WatchEnd.Open,
        ulong member = 1)
    {
        var shape = new WatchObservation(id, member, key, rangeEnd, start, [], end) { PrevKv = prevKv, NoPut = noPut, NoDelete = noDelete };
        var responses = committed
            .Where(e => e.Revision >= start && e.Revision <= through && shape.Covers(e.Key))
            .Where(e => !(noPut && e.Type == CommittedEventType.Put) && !(noDelete && e.Type == CommittedEventType.Delete))
            .Select(e => prevKv ? e : e.WithoutPrevKv())
            .GroupBy(e => e.Revision)
            .Select(g => new WatchResponseObservation(g.Key, g.ToList()))
            .ToList();
        responses.Add(new WatchResponseObservation(through, []));
        return shape with { Responses = responses };
    }

    /// <summary>A whole-keyspace reference watcher (Key "\0", RangeEnd "\0", prev_kv) from revision 1.</summary>
    public static WatchObservation Whole(IEnumerable<CommittedEvent> committed, string id, long through, long start = 1, ulong member = 1) =>
        Observe(committed, id, "\0", "\0", start, through, prevKv: true, member: member);

    /// <summary>The same observation with its responses replaced.</summary>
    public static WatchObservation WithResponses(this WatchObservation watch, params WatchResponseObservation[] responses) => watch with { Responses = responses };

    public static EtcdKeyValue Kv(string key, string value, long create, long mod, long version, long lease = 0) => new(key, value, create, mod, version, lease);
}
