using EmbeddedRaft.TestSupport;
using static EmbeddedRaft.Mvcc.Tests.Replication.ReplicatedCluster;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>Compaction goes through the log: every member compacts at the same revision.</summary>
public sealed class ReplicatedCompactionTests
{
    [Test]
    public async Task ACompactionFromAFollowerCompactsEveryMemberAtTheSameRevision()
    {
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed: 2200);
        long revision = 0;
        for (int i = 0; i < 12; i++)
        {
            revision = (await cluster[(ulong)((i % 3) + 1)].PutAsync(new PutRequest { Key = Key("k"), Value = Key($"v{i}") }).AsTask().WaitAsync(Waits.Limit)).Header.Revision;
        }

        long at = revision - 4;
        ulong follower = cluster.FollowerIds().First();
        var compacted = await cluster[follower].CompactAsync(at, physical: true).AsTask().WaitAsync(Waits.Limit);
        Assert.That(compacted.Header.MemberId, Is.EqualTo(follower));
        await cluster.WaitForAppliedAsync(cluster[follower].Status.RaftAppliedIndex);

        foreach (var (id, member) in cluster.Members)
        {
            Assert.That(member.Status.CompactRevision, Is.EqualTo(at), $"member {id}");
            var below = Assert.ThrowsAsync<RevisionCompactedException>(async () => await member.RangeAsync(new RangeRequest { Key = Key("k"), Revision = at - 1 }));
            Assert.That(below!.CompactRevision, Is.EqualTo(at));
            var still = await member.RangeAsync(new RangeRequest { Key = Key("k"), Revision = at });
            Assert.That(Text(still.Kvs[0].Value), Is.EqualTo($"v{at - 2}"), $"member {id}: revision {at} is still readable");
        }

        // Compacting at or below the compaction revision is refused on every member alike, through the log.
        Assert.ThrowsAsync<RevisionCompactedException>(async () => await cluster[1].CompactAsync(at));
        Assert.That(cluster.Members.Values.Select(m => m.Status.Revision).Distinct().Count(), Is.EqualTo(1));
    }
}
