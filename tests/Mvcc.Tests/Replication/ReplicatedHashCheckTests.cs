using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.TestSupport;
using static EmbeddedRaft.Mvcc.Tests.Replication.ReplicatedCluster;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>
/// The cross-member hash check: after a seeded workload from every member (puts, deletes, txns,
/// leases, a compaction) every member's hash at a common revision is equal and no alarm is raised;
/// when one member's store is damaged behind the log's back, the check raises the corruption alarm
/// on every member — in Status, and writes refused with etcd's "corrupt cluster".
/// </summary>
public sealed class ReplicatedHashCheckTests
{
    private static IEnumerable<int> Seeds() => TestSeeds.Choose("REPLICATION_SEED", "REPLICATION_SOAK_SEEDS", 1770, 2);

    [TestCaseSource(nameof(Seeds))]
    public async Task EveryMembersHashIsEqualAfterARandomWorkloadAndNoAlarmIsRaised(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: REPLICATION_SEED={seed})");
        var random = new Random(seed);
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed);
        var ids = cluster.Members.Keys.ToArray();
        await WorkloadAsync(cluster, ids, random, 150);

        // Both ways: HashKV asked of each member at one revision, and the check through the log.
        long at = (await cluster[cluster.LeaderId()].RangeAsync(new RangeRequest { Key = Key("h/") })).Header.Revision;
        await cluster.WaitForAppliedAsync(cluster[cluster.LeaderId()].Status.RaftIndex);
        var hashes = new List<uint>();
        foreach (var id in ids)
        {
            // HashKV is local (as etcd's): a linearizable read first makes the member apply through the workload.
            await cluster[id].RangeAsync(new RangeRequest { Key = Key("h/") });
            hashes.Add((await cluster[id].HashKVAsync(at)).Hash);
        }

        Assert.That(hashes.Distinct().Count(), Is.EqualTo(1), $"HashKV at revision {at} on every member");

        ulong check = await cluster[ids[random.Next(ids.Length)]].ProposeHashCheckAsync();
        foreach (var id in ids)
        {
            var reports = await cluster[id].HashReportsAsync(check, ids.Length).WaitAsync(Waits.Limit);
            Assert.That(reports.Select(r => r.MemberId), Is.EquivalentTo(ids), $"member {id} applied every member's report");
            Assert.That(reports.Select(r => (r.Revision, r.CompactRevision, r.Hash)).Distinct().Count(), Is.EqualTo(1), $"member {id}: all reports agree");
            Assert.That(cluster[id].Status.Alarms, Is.EqualTo(StoreAlarms.None), $"member {id} raised no alarm");
        }
    }

    [TestCase(false, TestName = "ADamagedMembersStoreRaisesTheCorruptionAlarmOnEveryMember(a value byte)")]
    [TestCase(true, TestName = "ADamagedMembersStoreRaisesTheCorruptionAlarmOnEveryMember(a header that no longer decodes)")]
    public async Task ADamagedMembersStoreRaisesTheCorruptionAlarmOnEveryMember(bool header)
    {
        // The periodic check, as configured by a user: no test hook starts it.
        await using var cluster = await ReplicatedCluster.StartAsync(3, 1780, o => o with { HashCheckInterval = TimeSpan.FromMilliseconds(200) });
        var ids = cluster.Members.Keys.ToArray();
        await WorkloadAsync(cluster, ids, new Random(1780), 40);
        await cluster.WaitForAppliedAsync(cluster[cluster.LeaderId()].Status.RaftIndex);
        Assert.That(ids.Select(id => cluster[id].Status.Alarms), Is.All.EqualTo(StoreAlarms.None), "no alarm while the stores agree");

        ulong damaged = cluster.FollowerIds().First();
        // A revision above the compaction point, which every hash covers.
        long hit = await cluster[damaged].Mvcc.CorruptStoredValueForTestsAsync(cluster[damaged].Mvcc.CompactRevision + 1, header);
        TestContext.Out.WriteLine($"damaged revision {hit} on member {damaged}");

        foreach (var id in ids)
        {
            await cluster[id].CorruptAlarmRaised.WaitAsync(Waits.Limit);
            Assert.That(cluster[id].Status.Alarms.HasFlag(StoreAlarms.Corrupt), Is.True, $"member {id} shows the alarm in its status");
            var refused = Assert.ThrowsAsync<MvccException>(async () => await cluster[id].PutAsync(new PutRequest { Key = Key("h/after"), Value = Key("x") }))!;
            Assert.That(refused.Error, Is.EqualTo(MvccError.Corrupt), $"member {id} refuses writes");
        }

        ulong healthy = ids.First(id => id != damaged);
        Assert.That((await cluster[healthy].RangeAsync(new RangeRequest { Key = Key("h/"), RangeEnd = Key("h0") })).Kvs, Is.Not.Empty, "reads still work under the alarm");
    }

    private static async Task WorkloadAsync(ReplicatedCluster cluster, ulong[] ids, Random random, int count)
    {
        var leases = new List<long>();
        for (int i = 0; i < count; i++)
        {
            var member = cluster[ids[random.Next(ids.Length)]];
            string key = $"h/{random.Next(20):D2}";
            if (i == count / 2)
            {
                // One compaction halfway, through the log: every member compacts at the same revision.
                var current = await member.RangeAsync(new RangeRequest { Key = Key("h/") });
                await member.CompactAsync(Math.Max(1, current.Header.Revision - 5));
                continue;
            }

            switch (random.Next(10))
            {
                case 0:
                    leases.Add((await member.LeaseGrantAsync(600)).Id);
                    break;
                case 1 when leases.Count > 0:
                    long lease = leases[random.Next(leases.Count)];
                    leases.Remove(lease);
                    await member.LeaseRevokeAsync(lease);
                    break;
                case 2:
                    await member.DeleteRangeAsync(new DeleteRangeRequest { Key = Key(key), RangeEnd = random.Next(2) == 0 ? Key($"h/{random.Next(20):D2}~") : default });
                    break;
                case 3:
                    await member.TxnAsync(new TxnRequest
                    {
                        Compare = [new Compare { Key = Key(key), Target = CompareTarget.Version, Result = CompareResult.Greater, Version = 1 }],
                        Success = [RequestOp.Put(new PutRequest { Key = Key(key), Value = Key($"t{i}") })],
                        Failure = [RequestOp.DeleteRange(new DeleteRangeRequest { Key = Key(key) })],
                    });
                    break;
                default:
                    await member.PutAsync(new PutRequest { Key = Key(key), Value = Key($"v{i}"), Lease = leases.Count > 0 && random.Next(3) == 0 ? leases[random.Next(leases.Count)] : 0 });
                    break;
            }
        }
    }
}
