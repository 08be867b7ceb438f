using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.TestSupport;
using static EmbeddedRaft.Mvcc.Tests.Replication.ReplicatedCluster;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>
/// A replicated store's Raft snapshots copy no data (its B+tree holds the consistent index): the
/// snapshot files hold only metadata, a member crashed after its log was compacted restarts from
/// its own store and the log's tail, and a member far behind installs the leader's store as of the
/// moment it was sent — newer than the leader's snapshot — then applies the rest and agrees.
/// </summary>
public sealed class ReplicatedMetadataSnapshotTests
{
    private static IEnumerable<int> Seeds() => TestSeeds.Choose("REPLICATION_SEED", "REPLICATION_SOAK_SEEDS", 1790, 2);

    [TestCaseSource(nameof(Seeds))]
    public async Task AMemberCrashedAfterItsLogWasCompactedRestartsFromItsStoreAndTheLogsTail(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: REPLICATION_SEED={seed})");
        var random = new Random(seed);
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed, SnapshotOften);
        var acknowledged = new Dictionary<string, (string Value, long Revision)>();
        ulong victim = cluster.FollowerIds().First();
        await PutAsync(cluster, random, acknowledged, 50);
        for (int i = 0; i < 200 && cluster[victim].Node.Status.SnapshotIndex == 0; i++)
        {
            await PutAsync(cluster, random, acknowledged, 1);
        }

        var snapshotIndex = cluster[victim].Node.Status.SnapshotIndex;
        Assert.That(snapshotIndex, Is.GreaterThan(0), "the member took a snapshot and compacted its log");

        // The snapshot files hold metadata and the deduplication window only: each is smaller than
        // one page of the store's B+tree, which an image of it could not be.
        var disk = cluster.Disk(victim);
        var snapshotFiles = disk.AllFiles().Where(f => f.EndsWith(".snap", StringComparison.Ordinal)).ToList();
        Assert.That(snapshotFiles, Is.Not.Empty);
        Assert.That(snapshotFiles.Select(disk.GetLength), Is.All.LessThan(MvccStoreOptions.DefaultBTreePageSizeBytes), string.Join(", ", snapshotFiles));

        // Writes after the snapshot are in the log, and perhaps not yet synced in the store: the crash may lose them there.
        await PutAsync(cluster, random, acknowledged, 15);
        await cluster.CrashMemberAsync(victim);
        await cluster.StartMemberAsync(victim, cluster.InitialMembers);
        await cluster.WaitForLeaderAsync();
        await PutAsync(cluster, random, acknowledged, 5);
        await cluster.WaitForAppliedAsync(cluster[cluster.LeaderId()].Status.RaftIndex);

        Assert.That(cluster[victim].Node.Status.SnapshotIndex, Is.GreaterThanOrEqualTo(snapshotIndex), "the restart began from the compacted log");
        Assert.That(cluster[victim].SnapshotsRestored, Is.Zero, "its own store and the log's tail were enough: nothing was installed");
        await AssertAgreeAsync(cluster, acknowledged);
    }

    [TestCaseSource(nameof(Seeds))]
    public async Task AMemberFarBehindInstallsTheLeadersStoreAsSentThenAppliesTheRestAndAgrees(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: REPLICATION_SEED={seed})");
        var random = new Random(seed);
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed, SnapshotOften);
        var acknowledged = new Dictionary<string, (string Value, long Revision)>();
        ulong leader = cluster.LeaderId();
        ulong lagging = cluster.FollowerIds().First();
        cluster.Network.Isolate(lagging);

        // Until the leader has compacted its log past the lagging member, then a few more: the next
        // snapshot is 20 entries away, so the leader's applied index ends above its snapshot's.
        for (int i = 0; i < 100 && cluster[leader].Node.Status.SnapshotIndex == 0; i++)
        {
            await PutAsync(cluster, random, acknowledged, 1, through: leader);
        }

        await PutAsync(cluster, random, acknowledged, 5, through: leader);
        var leaderApplied = cluster[leader].Node.Status.AppliedIndex;
        Assert.That(cluster[leader].Node.Status.SnapshotIndex, Is.GreaterThan(cluster[lagging].Node.Status.AppliedIndex), "the lagging member is behind the leader's compacted log");

        cluster.Network.Heal();
        await cluster.WaitForAppliedAsync(leaderApplied);
        await PutAsync(cluster, random, acknowledged, 5, through: leader);
        await cluster.WaitForAppliedAsync(cluster[leader].Status.RaftIndex);

        Assert.That(cluster[lagging].SnapshotsRestored, Is.EqualTo(1));
        Assert.That(cluster[lagging].LastRestoredIndex, Is.GreaterThan(cluster[leader].Node.Status.SnapshotIndex), "the image is the leader's store when it was sent, newer than its snapshot");
        Assert.That(cluster[lagging].LastRestoredIndex, Is.GreaterThanOrEqualTo(leaderApplied));
        await AssertAgreeAsync(cluster, acknowledged);
    }

    /// <summary>Puts <paramref name="count"/> values one at a time (each acknowledged before the next), through <paramref name="through"/> or a random member.</summary>
    private static async Task PutAsync(ReplicatedCluster cluster, Random random, Dictionary<string, (string Value, long Revision)> acknowledged, int count, ulong through = 0)
    {
        var ids = cluster.Members.Keys.Order().ToArray();
        for (int i = 0; i < count; i++)
        {
            string key = $"m/{random.Next(30):D2}";
            string value = $"v{acknowledged.Count}-{random.Next(1000)}";
            var member = cluster[through != 0 ? through : ids[random.Next(ids.Length)]];
            var put = await member.PutAsync(new PutRequest { Key = Key(key), Value = Key(value) }).AsTask().WaitAsync(Waits.Limit);
            acknowledged[key] = (value, put.Header.Revision);
        }
    }

    /// <summary>Every member holds every acknowledged write at the revision it was acknowledged with, and all hash their whole history equal.</summary>
    private static async Task AssertAgreeAsync(ReplicatedCluster cluster, Dictionary<string, (string Value, long Revision)> acknowledged)
    {
        var hashes = new Dictionary<ulong, uint>();
        long revision = 0;
        foreach (var (id, member) in cluster.Members)
        {
            // Linearizable: the member has applied everything acknowledged before the read.
            var range = await member.RangeAsync(new RangeRequest { Key = Key("m/"), RangeEnd = Key("m0") }).AsTask().WaitAsync(Waits.Limit);
            var held = range.Kvs.ToDictionary(kv => Text(kv.Key), kv => (Text(kv.Value), kv.ModRevision));
            Assert.That(held, Is.EquivalentTo(acknowledged), $"member {id} holds every acknowledged write at its revision");
            revision = revision == 0 ? range.Header.Revision : revision;
            Assert.That(range.Header.Revision, Is.EqualTo(revision), $"member {id}: one revision per write, none applied twice");
            hashes[id] = (await member.HashKVAsync(revision)).Hash;
        }

        Assert.That(hashes.Values.Distinct().Count(), Is.EqualTo(1), $"HashKV at revision {revision}: {string.Join(", ", hashes.Select(h => $"{h.Key}={h.Value:x8}"))}");
    }
}
