using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.TestSupport;
using static EmbeddedRaft.Mvcc.Tests.Replication.ReplicatedCluster;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>
/// A member partitioned while the others compact their log past it installs the leader's snapshot
/// (a B+tree image swapped into its store in place) and then agrees with them: the same hash, the
/// same leases with the same keys, the same member registry; and its open watch goes on through
/// the install, seeing exactly the leader's history.
/// </summary>
public sealed class ReplicatedSnapshotTests
{
    private static IEnumerable<int> Seeds() => TestSeeds.Choose("REPLICATION_SEED", "REPLICATION_SOAK_SEEDS", 1750, 2);

    [TestCaseSource(nameof(Seeds))]
    public async Task ALaggingMemberInstallsTheSnapshotThenAgreesAndItsWatchGoesOn(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: REPLICATION_SEED={seed})");
        var random = new Random(seed);
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed, SnapshotOften);
        ulong leader = cluster.LeaderId();
        ulong lagging = cluster.FollowerIds().First();
        var up = cluster.Members.Keys.Where(id => id != lagging).ToArray();
        await cluster[leader].PutAsync(new PutRequest { Key = Key("s/before"), Value = Key("v") });
        using var watch = cluster[lagging].Watch(new WatchRequest { Key = Key("s/"), RangeEnd = Key("s0"), StartRevision = 1 });

        cluster.Network.Isolate(lagging);
        var leases = new List<long>();
        for (int i = 0; i < 120; i++)
        {
            var member = cluster[up[random.Next(up.Length)]];
            string key = $"s/{random.Next(15):D2}";
            switch (random.Next(8))
            {
                case 0:
                    leases.Add((await member.LeaseGrantAsync(600)).Id);
                    break;
                case 1 when leases.Count > 0:
                    long revoked = leases[random.Next(leases.Count)];
                    leases.Remove(revoked);
                    await member.LeaseRevokeAsync(revoked);
                    break;
                case 2:
                    await member.DeleteRangeAsync(new DeleteRangeRequest { Key = Key(key) });
                    break;
                default:
                    long lease = leases.Count > 0 && random.Next(3) == 0 ? leases[random.Next(leases.Count)] : 0;
                    await member.PutAsync(new PutRequest { Key = Key(key), Value = Key($"v{i}"), Lease = lease });
                    break;
            }
        }

        // A member joins the registry while the lagging one is away: the registry travels in the image.
        await cluster[leader].AddMemberAsync(Member(9, learner: true));
        long final = (await cluster[leader].RangeAsync(new RangeRequest { Key = Key("s/") })).Header.Revision;

        cluster.Network.Heal();
        await cluster.WaitForAppliedAsync(cluster[leader].Status.RaftIndex);
        Assert.That(cluster[lagging].SnapshotsRestored, Is.GreaterThanOrEqualTo(1), "the lagging member caught up by installing a snapshot");

        // Agreement: hash of the whole history, leases with their keys, the registry.
        var hashes = new Dictionary<ulong, uint>();
        foreach (var id in cluster.Members.Keys)
        {
            // HashKV is local (as etcd's): a linearizable read first makes the member apply through the workload.
            await cluster[id].RangeAsync(new RangeRequest { Key = Key("s/") });
            var hash = await cluster[id].HashKVAsync(final);
            hashes[id] = hash.Hash;
            Assert.That(hash.HashRevision, Is.EqualTo(final));
        }

        Assert.That(hashes.Values.Distinct().Count(), Is.EqualTo(1), $"HashKV at revision {final}: {string.Join(", ", hashes.Select(h => $"{h.Key}={h.Value:x8}"))}");
        string leasesOnLeader = await DescribeLeasesAsync(cluster[leader]);
        Assert.That(await DescribeLeasesAsync(cluster[lagging]), Is.EqualTo(leasesOnLeader), "the lagging member has the same leases with the same keys");
        var registry = (await cluster[leader].MemberListAsync()).Select(m => m.ToString()).ToList();
        Assert.That((await cluster[lagging].MemberListAsync()).Select(m => m.ToString()), Is.EqualTo(registry), "and the same member registry");
        Assert.That(registry, Has.Some.Contains("m9"));

        // The lagging member's watch, open through the install, saw exactly the leader's history.
        var expected = await HistoryAsync(cluster[leader], final);
        var seen = new List<string>();
        await using var events = watch.GetAsyncEnumerator();
        while (seen.Count < expected.Count)
        {
            Assert.That(await events.MoveNextAsync().AsTask().WaitAsync(Waits.Limit), Is.True, "the lagging member's watch ended");
            seen.AddRange(events.Current.Events.Select(Show));
        }

        Assert.That(seen, Is.EqualTo(expected), "the lagging member's watch");

        // And it goes on: a write now reaches it live.
        var put = await cluster[leader].PutAsync(new PutRequest { Key = Key("s/after"), Value = Key("x") });
        Assert.That(await events.MoveNextAsync().AsTask().WaitAsync(Waits.Limit), Is.True);
        Assert.That(events.Current.Events.Select(Show), Is.EqualTo(new[] { $"Put s/after=x@{put.Header.Revision}" }));
    }

    private static async Task<string> DescribeLeasesAsync(ReplicatedStore member)
    {
        var parts = new List<string>();
        foreach (long id in (await member.LeaseLeasesAsync()).Leases.Order())
        {
            var ttl = await member.LeaseTimeToLiveAsync(id, keys: true);
            parts.Add($"{id}/{ttl.GrantedTtlSeconds}: {string.Join(",", ttl.Keys.Select(k => Text(k)))}");
        }

        return string.Join(" | ", parts);
    }

    /// <summary>The history of the prefix as events, read from <paramref name="member"/> revision by revision (independently of watches).</summary>
    private static async Task<List<string>> HistoryAsync(ReplicatedStore member, long through)
    {
        var history = new List<string>();
        await using var all = member.WatchAsync(new WatchRequest { Key = Key("s/"), RangeEnd = Key("s0"), StartRevision = 1 }).GetAsyncEnumerator();
        while (true)
        {
            Assert.That(await all.MoveNextAsync().AsTask().WaitAsync(Waits.Limit), Is.True);
            history.AddRange(all.Current.Events.Where(e => e.Kv.ModRevision <= through).Select(Show));
            if (all.Current.Header.Revision >= through)
            {
                return history;
            }
        }
    }

    private static string Show(WatchEvent e) => e.Type == WatchEventType.Put
        ? $"Put {Text(e.Kv.Key)}={Text(e.Kv.Value)}@{e.Kv.ModRevision}"
        : $"Delete {Text(e.Kv.Key)}@{e.Kv.ModRevision}";
}
