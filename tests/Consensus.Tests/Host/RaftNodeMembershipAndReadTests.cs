using System.Text;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>
/// ReadIndexAsync as a linearizable barrier on every kind of node; membership changes completing
/// when applied (a node that joins empty is caught up by a snapshot streamed over the transport);
/// leadership transfer; the leader-change stream.
/// </summary>
[TestFixture]
public sealed class RaftNodeMembershipAndReadTests
{
    private static ReadOnlyMemory<byte> Bytes(string s) => Encoding.UTF8.GetBytes(s);

    [Test]
    public async Task AReadIndexAfterAnAcknowledgedProposalSeesItOnEveryNode()
    {
        await using var cluster = await HostCluster.StartAsync(3, seed: 11);
        var leader = cluster.LeaderId();

        for (var i = 0; i < 5; i++)
        {
            await cluster[leader].ProposeAsync(Bytes($"w{i}")).AsTask().WaitAsync(Waits.Limit);
            foreach (var id in cluster.Nodes.Keys)
            {
                await cluster[id].ReadIndexAsync().AsTask().WaitAsync(Waits.Limit);
                Assert.That(cluster.Machines[id].Commands, Does.Contain($"w{i}"), $"node {id} after its read barrier");
            }
        }
    }

    [Test]
    public async Task ConcurrentReadsOnAFollowerAllCompleteAfterTheWritesBeforeThem()
    {
        await using var cluster = await HostCluster.StartAsync(3, seed: 12);
        var follower = cluster.FollowerId();
        await cluster[cluster.LeaderId()].ProposeAsync(Bytes("before")).AsTask().WaitAsync(Waits.Limit);

        var reads = Enumerable.Range(0, 50).Select(_ => cluster[follower].ReadIndexAsync().AsTask()).ToArray();
        await Task.WhenAll(reads).WaitAsync(Waits.Limit);

        Assert.That(cluster.Machines[follower].Commands, Does.Contain("before"));
    }

    [Test]
    public async Task AReadWithNoLeaderFailsWithNoLeaderExceptionAtItsTimeout()
    {
        await using var cluster = new HostCluster(seed: 13, o => o with { ReadIndexTimeout = TimeSpan.FromMilliseconds(300) });
        var node = await cluster.StartNodeAsync(1, [1, 2, 3]);

        Assert.That(async () => await node.ReadIndexAsync().AsTask().WaitAsync(Waits.Limit), Throws.TypeOf<NoLeaderException>());
    }

    [Test]
    public async Task ANodeThatJoinsEmptyIsCaughtUpByASnapshotAndServesProposalsAndReadsAsALearnerAndAsAVoter()
    {
        await using var cluster = await HostCluster.StartAsync(3, seed: 14);
        var leader = cluster.LeaderId();
        for (var i = 0; i < 20; i++)
        {
            await cluster[leader].ProposeAsync(Bytes($"early{i}")).AsTask().WaitAsync(Waits.Limit);
        }

        var joiner = await cluster.StartNodeAsync(4, voters: null);
        var asLearner = await cluster[leader].AddLearnerAsync(4).AsTask().WaitAsync(Waits.Limit);
        Assert.That(asLearner.Learners, Is.EqualTo(new ulong[] { 4 }));

        await cluster[leader].ProposeAsync(Bytes("to-learner")).AsTask().WaitAsync(Waits.Limit);
        await joiner.ReadIndexAsync().AsTask().WaitAsync(Waits.Limit);
        Assert.That(cluster.Machines[4].Commands, Does.Contain("early0").And.Contain("to-learner"), "a learner's read barrier");
        Assert.That(cluster.Machines[4].Restores, Is.EqualTo(1), "the joiner was caught up by a snapshot");

        var asVoter = await cluster[leader].PromoteLearnerAsync(4).AsTask().WaitAsync(Waits.Limit);
        Assert.That(asVoter.Voters, Is.EqualTo(new ulong[] { 1, 2, 3, 4 }));
        var result = await joiner.ProposeAsync(Bytes("from-4")).AsTask().WaitAsync(Waits.Limit);
        Assert.That(cluster.Machines[4].Commands[(int)result - 1], Is.EqualTo("from-4"));
    }

    [Test]
    public async Task RemovingAFollowerCompletesWithTheNewConfigurationOnAFollowerToo()
    {
        await using var cluster = await HostCluster.StartAsync(3, seed: 15);
        var leader = cluster.LeaderId();
        var followers = cluster.Nodes.Keys.Where(id => id != leader).ToArray();

        // Proposed on a follower: forwarded, and completed when applied there.
        var conf = await cluster[followers[0]].RemoveMemberAsync(followers[1]).AsTask().WaitAsync(Waits.Limit);

        Assert.That(conf.Voters, Is.EqualTo(new[] { leader, followers[0] }.Order()));
        await cluster.StopNodeAsync(followers[1]);
        Assert.That(await cluster[leader].ProposeAsync(Bytes("two-left")).AsTask().WaitAsync(Waits.Limit), Is.EqualTo(1));
    }

    [Test]
    public async Task TransferLeadershipCompletesWhenTheTargetLeadsAndEveryNodeSeesIt()
    {
        await using var cluster = await HostCluster.StartAsync(3, seed: 16);
        var leader = cluster.LeaderId();
        var target = cluster.FollowerId();
        var bystander = cluster.Nodes.Keys.Single(id => id != leader && id != target);
        using var cts = new CancellationTokenSource(Waits.Limit);
        var seen = WaitForLeaderAsync(cluster[bystander], target, cts.Token);

        await cluster[leader].TransferLeadershipAsync(target).AsTask().WaitAsync(Waits.Limit);

        Assert.That(cluster[leader].Status.LeaderId, Is.EqualTo(target), "the call completes once the old leader sees the target lead");
        await seen.WaitAsync(Waits.Limit);
        Assert.That(await cluster[target].ProposeAsync(Bytes("under-new-leader")).AsTask().WaitAsync(Waits.Limit), Is.EqualTo(1));
    }

    [Test]
    public async Task LeaderChangesStartsWithTheCurrentLeaderAndEndsWhenTheNodeIsDisposed()
    {
        var cluster = await HostCluster.StartAsync(1, seed: 17);
        var node = cluster[1];
        var seen = new List<LeaderChange>();

        await using (var enumerator = node.LeaderChanges().GetAsyncEnumerator())
        {
            Assert.That(await enumerator.MoveNextAsync().AsTask().WaitAsync(Waits.Limit), Is.True);
            seen.Add(enumerator.Current);
            await cluster.DisposeAsync();
            Assert.That(await enumerator.MoveNextAsync().AsTask().WaitAsync(Waits.Limit), Is.False, "the stream ends at disposal");
        }

        Assert.That(seen, Is.EqualTo(new[] { new LeaderChange(1, node.Status.Raft.HardState.Term, IsLocal: true) }));
    }

    private static async Task WaitForLeaderAsync(RaftNode<long> node, ulong leader, CancellationToken cancellationToken)
    {
        await foreach (var change in node.LeaderChanges(cancellationToken))
        {
            if (change.LeaderId == leader)
            {
                return;
            }
        }
    }
}
