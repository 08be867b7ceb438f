using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.TestSupport;
using static EmbeddedRaft.Mvcc.Tests.Replication.ReplicatedCluster;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>
/// A watch with previous key-values on a follower of a <see cref="ReplicatedStore"/> when the
/// revision before an event has been compacted through the log: what etcd does
/// (<c>Watch.WatchPrevKvCompactionTests</c> has the etcd 3.4.23 session and its watch server's
/// code): each previous key-value is read at the event's revision − 1 when the response is built,
/// kept at the compact revision, left out below it; a watch (or a catch-up) from the compact revision
/// or before ends with the compacted error.
/// </summary>
public sealed class ReplicatedWatchPrevKvCompactionTests
{
    private static IEnumerable<int> Seeds() => TestSeeds.Choose("REPLICATION_SEED", "REPLICATION_SOAK_SEEDS", 2400, 1);

    [TestCaseSource(nameof(Seeds))]
    public async Task OnAFollowerEventsBufferedBeforeACompactionLoseOnlyTheCompactedPrevKvsAndTheCatchUpAfterThemKeepsTheirs(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: REPLICATION_SEED={seed})");

        // Three events fit in a watcher's buffer on every member; a fourth makes it catch up from history.
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed, options => options with { Store = new MvccStoreOptions { Watch = new WatchOptions { MaxBufferedEvents = 3 } } });
        ulong followerId = cluster.FollowerIds().First();
        var follower = cluster[followerId];
        using var stream = follower.Watch(new WatchRequest { Key = Key("a"), PrevKv = true });
        await using var watch = stream.GetAsyncEnumerator();

        // Through the follower: each put completes once applied there, so its event is staged (or,
        // from the fourth on, left to history) before the next.
        var revisions = new List<long>();
        for (int i = 1; i <= 5; i++)
        {
            revisions.Add((await follower.PutAsync(new PutRequest { Key = Key("a"), Value = Key($"{i}") }).AsTask().OrFailAsync($"put {i}", cluster.Describe)).Header.Revision);
        }

        long first = revisions[0];
        Assert.That(revisions, Is.EqualTo(Enumerable.Range(0, 5).Select(i => first + i)), "nothing else wrote: consecutive revisions");
        Assert.That(follower.Mvcc.Watches.FellBehindCount, Is.EqualTo(1), "the fourth put did not fit: the watcher reads the last two from history");

        // Through the log, answered once applied (and pruned) on the follower, before a response is built.
        await follower.CompactAsync(first + 1, physical: true).AsTask().OrFailAsync("the compaction", cluster.Describe);
        var events = new List<WatchEvent>();
        while (events.Count < 5)
        {
            Assert.That(await watch.MoveNextAsync().AsTask().OrFailAsync("the watch's next response", cluster.Describe), Is.True, "the watch ended early");
            Assert.That(watch.Current.Header.MemberId, Is.EqualTo(followerId));
            events.AddRange(watch.Current.Events);
        }

        Assert.That(events.Select(e => (e.Kv.ModRevision, Text(e.Kv.Value), e.PrevKv is { } p ? $"{Text(p.Value)}@{p.ModRevision}" : "none")), Is.EqualTo(new[]
        {
            (first, "1", "none"),                                 // created
            (first + 1, "2", "none"),                             // its previous revision is below the compact revision
            (first + 2, "3", $"2@{first + 1}"),                   // read at the compact revision: kept
            (first + 3, "4", $"3@{first + 2}"),                   // from history
            (first + 4, "5", $"4@{first + 3}"),
        }));

        // A new watch from the compact revision ends with the error (etcd would deliver a=2 without
        // prev_kv: the store is stricter, docs/architecture.md "Watches"); from the next one every
        // previous key-value is there.
        await using (var fromCompact = follower.Watch(new WatchRequest { Key = Key("a"), StartRevision = first + 1, PrevKv = true }).GetAsyncEnumerator())
        {
            var error = Assert.ThrowsAsync<RevisionCompactedException>(async () => await fromCompact.MoveNextAsync().AsTask().WaitAsync(Waits.Limit))!;
            Assert.That(error.CompactRevision, Is.EqualTo(first + 1));
        }

        await using var after = follower.Watch(new WatchRequest { Key = Key("a"), StartRevision = first + 2, PrevKv = true }).GetAsyncEnumerator();
        Assert.That(await after.MoveNextAsync().AsTask().OrFailAsync("the watch from the compact revision + 1", cluster.Describe), Is.True);
        Assert.That(after.Current.Events.Select(e => e.PrevKv is { } p ? $"{Text(p.Value)}@{p.ModRevision}" : "none"), Is.EqualTo(new[] { $"2@{first + 1}", $"3@{first + 2}", $"4@{first + 3}" }));
    }
}
