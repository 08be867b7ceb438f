using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.TestSupport;
using static EmbeddedRaft.Mvcc.Tests.Replication.ReplicatedCluster;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>The replicated store's KV API on a three-member cluster: writes from every member, reads on every member, headers.</summary>
public sealed class ReplicatedStoreBasicTests
{
    [Test]
    public async Task WritesOnEveryMemberAreAppliedOnceEverywhereWithOneRevisionEachAndHeadersNamingTheMember()
    {
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed: 1701);
        var revisions = new List<long>();
        foreach (var (id, member) in cluster.Members)
        {
            var put = await member.PutAsync(new PutRequest { Key = Key($"k{id}"), Value = Key($"from {id}") }).AsTask().WaitAsync(Waits.Limit);
            Assert.That(put.Header.MemberId, Is.EqualTo(id));
            Assert.That(put.Header.ClusterId, Is.EqualTo(member.ClusterId).And.Not.Zero);
            Assert.That(put.Header.RaftTerm, Is.Not.Zero);
            revisions.Add(put.Header.Revision);
        }

        // One revision per write, in the order acknowledged, whichever member proposed it.
        Assert.That(revisions, Is.EqualTo(new long[] { 2, 3, 4 }));
        var txn = await cluster[2].TxnAsync(new TxnRequest
        {
            Compare = [new Compare { Key = Key("k1"), Target = CompareTarget.Version, Result = CompareResult.Equal, Version = 1 }],
            Success = [RequestOp.Put(new PutRequest { Key = Key("k1"), Value = Key("txn") }), RequestOp.Range(new RangeRequest { Key = Key("k"), RangeEnd = Key("l") })],
        }).AsTask().WaitAsync(Waits.Limit);
        Assert.That(txn.Succeeded, Is.True);
        Assert.That(txn.Header.Revision, Is.EqualTo(5));
        var deleted = await cluster[3].DeleteRangeAsync(new DeleteRangeRequest { Key = Key("k2"), PrevKv = true }).AsTask().WaitAsync(Waits.Limit);
        Assert.That(deleted.Deleted, Is.EqualTo(1));
        Assert.That(Text(deleted.PrevKvs[0].Value), Is.EqualTo("from 2"));

        foreach (var (id, member) in cluster.Members)
        {
            var range = await member.RangeAsync(new RangeRequest { Key = Key("k"), RangeEnd = Key("l") }).AsTask().WaitAsync(Waits.Limit);
            Assert.That(range.Kvs.Select(kv => $"{Text(kv.Key)}={Text(kv.Value)}@{kv.ModRevision}"), Is.EqualTo(new[] { "k1=txn@5", "k3=from 3@4" }), $"member {id}");
            Assert.That(range.Header.Revision, Is.EqualTo(6));
            Assert.That(range.Header.MemberId, Is.EqualTo(id));
        }
    }

    [Test]
    public async Task RefusalsComeBackAsTheStoresExceptionsAndChangeNothing()
    {
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed: 1702);
        var follower = cluster[cluster.FollowerIds().First()];
        await follower.PutAsync(new PutRequest { Key = Key("a"), Value = Key("1") }).AsTask().WaitAsync(Waits.Limit);
        var missingLease = Assert.ThrowsAsync<MvccException>(async () => await follower.PutAsync(new PutRequest { Key = Key("a"), Value = Key("2"), Lease = 42 }));
        Assert.That(missingLease!.Error, Is.EqualTo(MvccError.LeaseNotFound));
        var empty = Assert.ThrowsAsync<MvccException>(async () => await follower.PutAsync(new PutRequest { Key = ReadOnlyMemory<byte>.Empty }));
        Assert.That(empty!.Error, Is.EqualTo(MvccError.EmptyKey));
        var tooLarge = Assert.ThrowsAsync<MvccException>(async () => await follower.PutAsync(new PutRequest { Key = Key("big"), Value = new byte[MvccStoreOptions.DefaultMaxRequestBytes] }));
        Assert.That(tooLarge!.Error, Is.EqualTo(MvccError.RequestTooLarge));
        var future = Assert.ThrowsAsync<FutureRevisionException>(async () => await follower.CompactAsync(100));
        Assert.That(future, Is.Not.Null);
        var status = follower.Status;
        Assert.That(status.Revision, Is.EqualTo(2), "the refused writes made no revision");
    }

    [Test]
    public async Task StatusReportsTheLeaderIndexesRevisionAndSizeOfEachMember()
    {
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed: 1703);
        var put = await cluster[2].PutAsync(new PutRequest { Key = Key("s"), Value = Key("1") }).AsTask().WaitAsync(Waits.Limit);
        await cluster.WaitForAppliedAsync(cluster[2].Status.RaftAppliedIndex);
        ulong leader = cluster.LeaderId();
        foreach (var (id, member) in cluster.Members)
        {
            var status = member.Status;
            Assert.That(status.MemberId, Is.EqualTo(id));
            Assert.That(status.ClusterId, Is.EqualTo(cluster[1].ClusterId));
            Assert.That(status.LeaderId, Is.EqualTo(leader));
            Assert.That(status.RaftTerm, Is.Not.Zero);
            Assert.That(status.RaftAppliedIndex, Is.GreaterThan(0UL).And.LessThanOrEqualTo(status.RaftIndex));
            Assert.That(status.Revision, Is.EqualTo(put.Header.Revision));
            Assert.That(status.CompactRevision, Is.EqualTo(-1));
            Assert.That(status.DbSizeBytes, Is.GreaterThan(0));
            Assert.That(status.IsLearner, Is.False);
            Assert.That(status.Alarms, Is.EqualTo(StoreAlarms.None));
            Assert.That(status.StoppedCause, Is.Null);
        }
    }

    [Test]
    public async Task ACommandOfAnUnknownKindStopsEveryMemberInsteadOfBeingSkipped()
    {
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed: 1704);
        await cluster[1].PutAsync(new PutRequest { Key = Key("before"), Value = Key("1") }).AsTask().WaitAsync(Waits.Limit);

        // As a newer version's command would arrive: a kind this version does not know.
        Assert.CatchAsync(async () => await cluster[1].Node.ProposeAsync(new byte[] { 0xEE, 1, 2 }).AsTask().WaitAsync(Waits.Limit));
        foreach (var (id, member) in cluster.Members)
        {
            var cause = await StoppedCauseAsync(member);
            Assert.That(cause, Is.InstanceOf<InvalidDataException>(), $"member {id}");
            Assert.That(cause!.Message, Does.Contain("kind 238"), $"member {id}");
            Assert.ThrowsAsync<Consensus.Host.NodeStoppedException>(async () => await member.PutAsync(new PutRequest { Key = Key("after"), Value = Key("2") }));
            Assert.That(member.Status.Revision, Is.EqualTo(2), $"member {id}: nothing after the bad command was applied");
        }
    }

    private static async Task<Exception?> StoppedCauseAsync(Mvcc.Replication.ReplicatedStore member)
    {
        // The leader-change stream ends with NodeStoppedException when the node fails.
        try
        {
            await foreach (var unused in member.LeaderChanges().WithCancellation(new CancellationTokenSource(Waits.Limit).Token))
            {
            }
        }
        catch (Consensus.Host.NodeStoppedException)
        {
        }

        return member.Status.StoppedCause;
    }
}
