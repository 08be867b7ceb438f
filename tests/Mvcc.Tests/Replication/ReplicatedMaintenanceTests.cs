using System.Security.Cryptography;
using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.Storage.IO;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Replication.ReplicatedCluster;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>
/// etcd's maintenance calls on a replicated store: a backup is a point-in-time B+tree file that
/// opens as a store holding exactly the history up to its revision; the corruption alarm is
/// disarmed on every member through the log; a learner is promoted only by the leader and only
/// once in sync.
/// </summary>
public sealed class ReplicatedMaintenanceTests
{
    private static IEnumerable<int> Seeds() => TestSeeds.Choose("REPLICATION_SEED", "REPLICATION_SOAK_SEEDS", 1901, 1);

    [TestCaseSource(nameof(Seeds))]
    public async Task ABackupOpensAsAStoreWithExactlyTheHistoryUpToItsRevisionWhileWritesGoOn(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: REPLICATION_SEED={seed})");
        var random = new Random(seed);
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed);
        ulong follower = cluster.FollowerIds().First();
        var member = cluster[follower];
        for (int i = 0; i < 300; i++)
        {
            string key = $"b/{random.Next(40):D2}";
            if (random.Next(8) == 0)
            {
                await member.DeleteRangeAsync(new DeleteRangeRequest { Key = Key(key) });
            }
            else
            {
                await member.PutAsync(new PutRequest { Key = Key(key), Value = Key($"v{i}-{new string('x', random.Next(200))}") });
            }

            if (i == 150)
            {
                await member.CompactAsync(member.Mvcc.Revision - 20);
            }
        }

        // Writes keep coming while the backup is made (the writer is running before it starts): the
        // backup holds one revision, whatever they do.
        using var stop = new CancellationTokenSource();
        var writing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int writesAfter = 0;
        var writer = Task.Run(async () =>
        {
            for (int i = 0; !stop.IsCancellationRequested; i++)
            {
                await cluster[cluster.LeaderId()].PutAsync(new PutRequest { Key = Key($"b/after/{i % 10}"), Value = Key($"{i}") });
                writing.TrySetResult();
                writesAfter++;
            }
        });
        await writing.Task.WaitAsync(Waits.Limit);
        var bytes = new MemoryStream();
        long revision;
        long compactRevision;
        await using (var backup = await member.CreateBackupAsync())
        {
            revision = backup.Revision;
            compactRevision = backup.CompactRevision;
            await backup.CopyToAsync(bytes);
            Assert.That(bytes.Length, Is.EqualTo(backup.SizeBytes));
            Assert.That(SHA256.HashData(bytes.ToArray()), Is.EqualTo(backup.Sha256.ToArray()), "the bytes hash to the announced SHA-256");
            Assert.That(backup.SizeBytes % 4096, Is.Zero, "whole pages");
            Assert.That(cluster.Disk(follower).ListFiles("/member" + follower + "/mvcc").Count(name => name.Contains(".backup-", StringComparison.Ordinal)), Is.EqualTo(1));
        }

        Assert.That(cluster.Disk(follower).ListFiles("/member" + follower + "/mvcc").Where(name => name.Contains(".backup-", StringComparison.Ordinal)), Is.Empty, "disposing deletes the copy");
        await stop.CancelAsync();
        await writer.WaitAsync(Waits.Limit);
        TestContext.Out.WriteLine($"backup at revision {revision}; the concurrent writer made {writesAfter} puts in all");

        // One more write, applied on the member: the live store is past the backup's revision.
        await member.PutAsync(new PutRequest { Key = Key("b/last"), Value = Key("x") });

        // The file opens as a store: its revision, compaction and every readable past revision are the live member's.
        var disk = new FaultInjectingFileSystem(seed);
        disk.CreateDirectory("/restored");
        using (var file = disk.Open("/restored/mvcc.db", FileOpenMode.CreateNew))
        {
            file.Write(0, bytes.ToArray());
            file.Flush();
        }

        await using var restored = MvccStore.Open(disk, "/restored", null);
        Assert.That(restored.Revision, Is.EqualTo(revision));
        Assert.That(restored.CompactRevision, Is.EqualTo(compactRevision));
        for (long at = Math.Max(compactRevision, 1); at <= revision; at++)
        {
            var everything = new RangeRequest { Key = Key("\0"), RangeEnd = Key("\0"), Revision = at };
            var expected = member.Mvcc.Range(everything);
            var actual = restored.Range(everything);
            Assert.That(actual.Kvs.Select(Describe), Is.EqualTo(expected.Kvs.Select(Describe)), $"every key at revision {at}");
        }

        Assert.Throws<FutureRevisionException>(() => restored.Range(new RangeRequest { Key = Key("b/"), Revision = revision + 1 }), "nothing written after the backup's revision is in it");
        Assert.That(member.Mvcc.Range(new RangeRequest { Key = Key("b/last") }).Kvs, Has.Count.EqualTo(1));
    }

    [Test]
    public async Task DisarmingTheCorruptionAlarmClearsItOnEveryMemberAndWritesAreTakenAgain()
    {
        await using var cluster = await ReplicatedCluster.StartAsync(3, 1902);
        var ids = cluster.Members.Keys.ToArray();
        for (int i = 0; i < 10; i++)
        {
            await cluster[ids[i % 3]].PutAsync(new PutRequest { Key = Key($"a/{i}"), Value = Key("v") });
        }

        await cluster.WaitForAppliedAsync(cluster[cluster.LeaderId()].Status.RaftIndex);
        ulong damaged = cluster.FollowerIds().First();
        await cluster[damaged].Mvcc.CorruptStoredValueForTestsAsync(2);
        await cluster[ids[0]].ProposeHashCheckAsync();
        foreach (var id in ids)
        {
            await cluster[id].CorruptAlarmRaised.WaitAsync(Waits.Limit);
        }

        Assert.That(await cluster[ids[1]].DisarmAlarmsAsync(StoreAlarms.NoSpace), Is.EqualTo(StoreAlarms.None), "an alarm that is not raised clears nothing");
        Assert.That(cluster[ids[1]].Status.Alarms, Is.EqualTo(StoreAlarms.Corrupt));

        Assert.That(await cluster[ids[2]].AlarmsAsync(), Is.EqualTo(StoreAlarms.Corrupt));
        Assert.That(await cluster[ids[1]].DisarmAlarmsAsync(StoreAlarms.Corrupt), Is.EqualTo(StoreAlarms.Corrupt));

        // The disarm is applied on the member that proposed it; every other member applies it too.
        await cluster.WaitForAppliedAsync(cluster[ids[1]].Status.RaftAppliedIndex);
        foreach (var id in ids)
        {
            Assert.That(cluster[id].Status.Alarms, Is.EqualTo(StoreAlarms.None), $"member {id}");
            Assert.That(await cluster[id].AlarmsAsync(), Is.EqualTo(StoreAlarms.None), $"member {id}, linearizably");
            await cluster[id].PutAsync(new PutRequest { Key = Key($"a/after/{id}"), Value = Key("v") });
        }

        Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await cluster[ids[0]].DisarmAlarmsAsync((StoreAlarms)8));
    }

    [Test]
    public async Task OnlyTheLeaderPromotesALearnerAndOnlyOnceItIsInSync()
    {
        await using var cluster = await ReplicatedCluster.StartAsync(3, 1903);
        for (int i = 0; i < 20; i++)
        {
            await cluster[1].PutAsync(new PutRequest { Key = Key($"p/{i}"), Value = Key("v") });
        }

        await cluster[cluster.LeaderId()].AddMemberAsync(Member(4, learner: true));

        // Never started: its log is empty.
        var behind = Assert.ThrowsAsync<MvccException>(async () => await cluster[cluster.LeaderId()].PromoteMemberAsync(4))!;
        Assert.That(behind.Error, Is.EqualTo(MvccError.LearnerNotReady));
        Assert.That(behind.EtcdMessage, Is.EqualTo("etcdserver: can only promote a learner member which is in sync with leader"));
        var onFollower = Assert.ThrowsAsync<MvccException>(async () => await cluster[cluster.FollowerIds().First()].PromoteMemberAsync(4))!;
        Assert.That(onFollower.Error, Is.EqualTo(MvccError.NotLeader));
        Assert.That((await cluster[1].MemberListAsync()).Single(m => m.Id == 4).IsLearner, Is.True, "a refused promotion changes nothing");

        await cluster.StartMemberAsync(4, initial: null);
        var members = await PromoteOnLeaderAsync(cluster, 4);
        Assert.That(members.Single(m => m.Id == 4).IsLearner, Is.False);
    }

    /// <summary>
    /// Promotes learner <paramref name="id"/> as an operator does: on the leader, again while it
    /// answers that the learner is behind or that it is not the leader (the leader's view of the
    /// learner's log refreshes every tick). Bounded by <see cref="Waits.Limit"/>.
    /// </summary>
    internal static async Task<IReadOnlyList<MemberInfo>> PromoteOnLeaderAsync(ReplicatedCluster cluster, ulong id)
    {
        var deadline = DateTime.UtcNow + Waits.Limit;
        while (true)
        {
            try
            {
                return await ReplicatedReadTests.ClientAsync(() => cluster[cluster.LeaderId()].PromoteMemberAsync(id));
            }
            catch (MvccException e) when (e.Error is MvccError.LearnerNotReady or MvccError.NotLeader && DateTime.UtcNow < deadline)
            {
                await Task.Delay(TickInterval * 5);
            }
        }
    }

    private static string Describe(KeyValue kv) =>
        $"{Text(kv.Key)}={Text(kv.Value)} c{kv.CreateRevision} m{kv.ModRevision} v{kv.Version} l{kv.Lease}";
}
