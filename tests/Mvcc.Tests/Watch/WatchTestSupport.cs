using System.Text;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Watch;

/// <summary>Short ways to open watches and read their responses with bounded waits.</summary>
internal static class WatchTestSupport
{
    public static WatchRequest Key(string key, long start = 0) => new() { Key = Encoding.UTF8.GetBytes(key), StartRevision = start };

    public static WatchRequest Prefix(string prefix, long start = 0) =>
        new() { Key = Encoding.UTF8.GetBytes(prefix), RangeEnd = KeyRange.PrefixEnd(Encoding.UTF8.GetBytes(prefix)), StartRevision = start };

    /// <summary>One event as text: "put k=v@mod" or "delete k@mod".</summary>
    public static string Show(WatchEvent e) => e.Type == WatchEventType.Put
        ? $"put {Encoding.UTF8.GetString(e.Kv.Key.Span)}={Encoding.UTF8.GetString(e.Kv.Value.Span)}@{e.Kv.ModRevision}"
        : $"delete {Encoding.UTF8.GetString(e.Kv.Key.Span)}@{e.Kv.ModRevision}";

    /// <summary>The next response, failing the test (not hanging) when none comes.</summary>
    public static WatchResponse Next(this IAsyncEnumerator<WatchResponse> watch, string what)
    {
        bool moved = watch.MoveNextAsync().AsTask().ResultOrFail(what);
        Assert.That(moved, Is.True, $"{what}: the watch ended");
        return watch.Current;
    }

    /// <summary>Reads responses until one's revision reaches <paramref name="revision"/>, returning every event on the way.</summary>
    public static List<WatchEvent> EventsThrough(this IAsyncEnumerator<WatchResponse> watch, long revision, string what)
    {
        var events = new List<WatchEvent>();
        while (true)
        {
            var response = watch.Next(what);
            events.AddRange(response.Events);
            if (response.Header.Revision >= revision)
            {
                return events;
            }
        }
    }
}
