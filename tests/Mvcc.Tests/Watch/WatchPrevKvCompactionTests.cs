using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;
using static EmbeddedRaft.Mvcc.Tests.Watch.WatchTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Watch;

/// <summary>
/// A watch with <see cref="WatchRequest.PrevKv"/> when the revision before an event has been
/// compacted, pinned against etcd. etcd's watch server (v3rpc <c>sendLoop</c>, 3.4 and 3.5 alike)
/// reads each event's previous key-value with a range at the event's revision − 1 when it builds the
/// response, and leaves it out when that range fails with "compacted" (a revision below the compact
/// revision; a range at the compact revision itself succeeds). Seen on a real etcd 3.4.23 (one member
/// on loopback, <c>etcdctl watch --rev=R --prev-kv a</c> after the history below and <c>compaction 3</c>):
/// from revision 4 every event has its previous key-value (the first one's read at revision 3, the
/// compact revision); from revision 3 the event at 3 comes without one and the rest with theirs; from
/// 2 the watch is cancelled with compact revision 3. The store refuses the watch from 3 as well
/// (stricter, docs/architecture.md "Watches": a compaction at C drops the tombstones of deletes at C).
/// </summary>
public sealed class WatchPrevKvCompactionTests
{
    private static IEnumerable<TestCaseData> Modes() =>
    [
        new TestCaseData(MvccDurability.Synced).SetArgDisplayNames("synced"),
        new TestCaseData(MvccDurability.NoSync).SetArgDisplayNames("no-sync"),
    ];

    private static IEnumerable<TestCaseData> ModesAndWatches() =>
    [
        new TestCaseData(MvccDurability.Synced, false).SetArgDisplayNames("synced", "key"),
        new TestCaseData(MvccDurability.Synced, true).SetArgDisplayNames("synced", "prefix"),
        new TestCaseData(MvccDurability.NoSync, false).SetArgDisplayNames("no-sync", "key"),
        new TestCaseData(MvccDurability.NoSync, true).SetArgDisplayNames("no-sync", "prefix"),
    ];

    [TestCaseSource(nameof(Modes))]
    public async Task AWatchFromTheCompactRevisionPlusOneGetsEveryPreviousKeyValueTheFirstReadAtTheCompactRevision(MvccDurability durability)
    {
        await using var store = OpenOn(new FaultInjectingFileSystem(2401), new MvccStoreOptions { Durability = durability });
        WriteEtcdSessionHistory(store);
        store.Compact(3);

        await using (var fromCompact = store.Watch(new WatchRequest { Key = B("a"), StartRevision = 3, PrevKv = true }).GetAsyncEnumerator())
        {
            // etcd 3.4.23 delivers put a=2@3 without prev_kv here; the store ends the watch instead.
            var error = Assert.ThrowsAsync<RevisionCompactedException>(async () => await fromCompact.MoveNextAsync())!;
            Assert.That((error.RequestedRevision, error.CompactRevision), Is.EqualTo((3L, 3L)));
        }

        await using var watch = store.Watch(new WatchRequest { Key = B("a"), StartRevision = 4, PrevKv = true }).GetAsyncEnumerator();
        var events = watch.EventsThrough(7, "the history after the compact revision");
        Assert.That(events.Select(ShowWithPrevious), Is.EqualTo(new[]
        {
            "put a=3@4 (prev a=2@3 v2)",      // read at revision 3, the compact revision: kept
            "delete a@6 (prev a=3@4 v3)",
            "put a=4@7 (no prev)",            // created again: nothing before it
        }));
    }

    [TestCaseSource(nameof(ModesAndWatches))]
    public async Task AnEventBufferedBeforeACompactionOfTheRevisionBeforeItComesWithoutPrevKvAndTheCatchUpAfterItWithItsPrevKvs(MvccDurability durability, bool prefix)
    {
        // Three events fit in the buffer; the fourth makes the watcher catch up from history.
        var options = new MvccStoreOptions { Durability = durability, Watch = new WatchOptions { MaxBufferedEvents = 3 } };
        await using var store = OpenOn(new FaultInjectingFileSystem(2402), options);
        await using var watch = store.Watch(PrevKvWatch(prefix)).GetAsyncEnumerator();
        for (int i = 1; i <= 5; i++)
        {
            store.Put("a", $"{i}");
        }

        Assert.That(store.Watches.FellBehindCount, Is.EqualTo(1), "the fourth put did not fit: the watcher reads revisions 5 and 6 from history");

        // Nothing was read yet: the responses are built now, after the compaction, as etcd's
        // sendLoop builds them from its channel after a compaction that came meanwhile.
        store.Compact(3);
        var events = watch.EventsThrough(6, "the buffered events, then the catch-up");
        Assert.That(events.Select(ShowWithPrevious), Is.EqualTo(new[]
        {
            "put a=1@2 (no prev)",            // created: nothing before it
            "put a=2@3 (no prev)",            // revision 2 is below the compact revision: compacted
            "put a=3@4 (prev a=2@3 v2)",      // revision 3 is the compact revision: kept
            "put a=4@5 (prev a=3@4 v3)",      // from history
            "put a=5@6 (prev a=4@5 v4)",
        }));
    }

    [TestCaseSource(nameof(ModesAndWatches))]
    public async Task ACompactionPastTheBufferEndsTheCatchUpAfterTheBufferedEventsWhichComeWithoutTheirCompactedPrevKvs(MvccDurability durability, bool prefix)
    {
        var options = new MvccStoreOptions { Durability = durability, Watch = new WatchOptions { MaxBufferedEvents = 3 } };
        await using var store = OpenOn(new FaultInjectingFileSystem(2403), options);
        await using var watch = store.Watch(PrevKvWatch(prefix)).GetAsyncEnumerator();
        for (int i = 1; i <= 5; i++)
        {
            store.Put("a", $"{i}");
        }

        // The watcher needs revision 5 from history, and the compaction is at 5. etcd would still
        // deliver a=4@5 (its unsynced watchers are cancelled only below the compact revision),
        // without prev_kv; the store ends the watch (the stricter rule of the class comment).
        store.Compact(5);
        var events = new List<WatchEvent>();
        RevisionCompactedException? error = null;
        try
        {
            while (await watch.MoveNextAsync().AsTask().WaitAsync(Waits.Limit))
            {
                events.AddRange(watch.Current.Events);
            }
        }
        catch (RevisionCompactedException e)
        {
            error = e;
        }

        Assert.That(events.Select(ShowWithPrevious), Is.EqualTo(new[]
        {
            "put a=1@2 (no prev)",
            "put a=2@3 (no prev)",            // revision 2 compacted
            "put a=3@4 (no prev)",            // revision 3 compacted
        }));
        Assert.That(error, Is.Not.Null, "the watch ended without the compacted error");
        Assert.That((error!.RequestedRevision, error.CompactRevision), Is.EqualTo((5L, 5L)));
    }

    /// <summary>
    /// The history of the etcd 3.4.23 session in the class comment: a=1@2, a=2@3, a=3@4, b=x@5,
    /// delete a@6, a=4@7.
    /// </summary>
    private static void WriteEtcdSessionHistory(MvccStore store)
    {
        store.Put("a", "1");
        store.Put("a", "2");
        store.Put("a", "3");
        store.Put("b", "x");
        store.Delete("a");
        store.Put("a", "4");
        Assert.That(store.Revision, Is.EqualTo(7));
    }

    private static WatchRequest PrevKvWatch(bool prefix) => prefix
        ? new WatchRequest { Key = B("a"), RangeEnd = KeyRange.PrefixEnd(B("a")), PrevKv = true }
        : new WatchRequest { Key = B("a"), PrevKv = true };

    /// <summary>An event and its previous key-value as text: "put a=3@4 (prev a=2@3 v2)".</summary>
    private static string ShowWithPrevious(WatchEvent e) =>
        $"{Show(e)} ({(e.PrevKv is { } p ? $"prev {S(p.Key)}={S(p.Value)}@{p.ModRevision} v{p.Version}" : "no prev")})";
}
