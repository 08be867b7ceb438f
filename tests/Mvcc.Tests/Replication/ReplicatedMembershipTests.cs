using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.TestSupport;
using static EmbeddedRaft.Mvcc.Tests.Replication.ReplicatedCluster;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>Membership through the store: the registry and Raft's configuration change together, on every member.</summary>
public sealed class ReplicatedMembershipTests
{
    [Test]
    public async Task ALearnerIsAddedCatchesUpIsPromotedAndAnotherMemberIsRemovedWithTheRegistryOnEveryMember()
    {
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed: 2100);
        for (int i = 0; i < 10; i++)
        {
            await cluster[(ulong)((i % 3) + 1)].PutAsync(new PutRequest { Key = Key($"before/{i}"), Value = Key($"{i}") }).AsTask().WaitAsync(Waits.Limit);
        }

        // Add member 4 as a learner, from a follower.
        var learner = Member(4, learner: true);
        var afterAdd = await cluster[cluster.FollowerIds().First()].AddMemberAsync(learner).AsTask().WaitAsync(Waits.Limit);
        Assert.That(afterAdd.Select(m => m.Id), Is.EqualTo(new ulong[] { 1, 2, 3, 4 }));
        Assert.That(afterAdd.Single(m => m.Id == 4), Is.EqualTo(learner));

        // It joins empty and receives the state from the leader.
        var joined = await cluster.StartMemberAsync(4, initial: null);
        var put = await cluster[1].PutAsync(new PutRequest { Key = Key("after"), Value = Key("join") }).AsTask().WaitAsync(Waits.Limit);
        var read = await ReplicatedReadTests.ClientAsync(() => joined.RangeAsync(new RangeRequest { Key = Key("\0"), RangeEnd = Key("\0") }));
        Assert.That(read.Kvs.Select(kv => Text(kv.Key)), Is.EquivalentTo(Enumerable.Range(0, 10).Select(i => $"before/{i}").Append("after")));
        Assert.That(read.Header.Revision, Is.EqualTo(put.Header.Revision));
        Assert.That(joined.Status.IsLearner, Is.True);
        Assert.That(joined.ClusterId, Is.EqualTo(cluster[1].ClusterId), "the joiner learned the cluster id from the registry");
        Assert.That(await joined.MemberListAsync().AsTask().WaitAsync(Waits.Limit), Is.EqualTo(afterAdd));

        // Promote it (on the leader: only it knows the learner is in sync), then remove member 3
        // (not necessarily the leader) from another member.
        var afterPromote = await ReplicatedMaintenanceTests.PromoteOnLeaderAsync(cluster, 4);
        Assert.That(afterPromote.Single(m => m.Id == 4).IsLearner, Is.False);
        ulong removed = cluster.FollowerIds().First(id => id != 4);
        ulong remover = cluster.Members.Keys.First(id => id != removed);
        var afterRemove = await ReplicatedReadTests.ClientAsync(() => cluster[remover].RemoveMemberAsync(removed));
        Assert.That(afterRemove.Select(m => m.Id), Is.EquivalentTo(new ulong[] { 1, 2, 3, 4 }.Where(id => id != removed)));
        await cluster.StopMemberAsync(removed);
        await cluster.WaitForLeaderAsync();

        foreach (var (id, member) in cluster.Members)
        {
            var list = await ReplicatedReadTests.ClientAsync(() => member.MemberListAsync());
            Assert.That(list, Is.EqualTo(afterRemove), $"member {id}'s registry");
            Assert.That(member.Status.IsLearner, Is.False);

            // The node's status refreshes its configuration every tick (no event to wait on): look until it does.
            await Waits.UntilAsync(() => member.Node.Status.Raft.Config.Voters.Order().SequenceEqual(afterRemove.Select(m => m.Id)), $"member {id}'s Raft configuration is {string.Join(",", afterRemove.Select(m => m.Id))}");
        }

        // The three remaining voters still take writes.
        await ReplicatedReadTests.ClientAsync(() => cluster[4].PutAsync(new PutRequest { Key = Key("last"), Value = Key("x") }));
    }

    [Test]
    public async Task ARegistryMemberSurvivesARestartOfEveryMember()
    {
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed: 2101);
        var learner = Member(9, learner: true);
        await cluster[1].AddMemberAsync(learner).AsTask().WaitAsync(Waits.Limit);
        foreach (var id in cluster.Members.Keys.ToArray())
        {
            await cluster.StopMemberAsync(id);
            await cluster.StartMemberAsync(id, cluster.InitialMembers);
        }

        await cluster.WaitForLeaderAsync();
        foreach (var (id, member) in cluster.Members)
        {
            var list = await ReplicatedReadTests.ClientAsync(() => member.MemberListAsync());
            Assert.That(list.Select(m => m.Id), Is.EqualTo(new ulong[] { 1, 2, 3, 9 }), $"member {id}");
            Assert.That(list.Single(m => m.Id == 9), Is.EqualTo(learner));
        }
    }

    [Test]
    public async Task BadMembersAreRefusedWithAnErrorNamingWhatIsWrongAndChangeNothing()
    {
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed: 2102);
        var member = cluster[1];
        var badUrl = Assert.ThrowsAsync<ArgumentException>(async () => await member.AddMemberAsync(new MemberInfo(5, "m5", ["http://host:2380"], [])));
        Assert.That(badUrl!.Message, Does.Contain("http://host:2380"));
        var noPort = Assert.ThrowsAsync<ArgumentException>(async () => await member.AddMemberAsync(new MemberInfo(5, "m5", ["tcp://host"], [])));
        Assert.That(noPort!.Message, Does.Contain("tcp://host"));
        var zero = Assert.ThrowsAsync<ArgumentException>(async () => await member.AddMemberAsync(new MemberInfo(0, "m0", ["tcp://host:1"], [])));
        Assert.That(zero!.Message, Does.Contain("0"));
        var noPeers = Assert.ThrowsAsync<ArgumentException>(async () => await member.AddMemberAsync(new MemberInfo(5, "m5", [], [])));
        Assert.That(noPeers!.Message, Does.Contain("no peer URL"));
        var clash = Assert.ThrowsAsync<ArgumentException>(async () => await member.AddMemberAsync(Member(2) with { Name = "other" }));
        Assert.That(clash!.Message, Does.Contain("registered already"));
        Assert.ThrowsAsync<ArgumentException>(async () => await member.RemoveMemberAsync(77));
        Assert.ThrowsAsync<ArgumentException>(async () => await member.PromoteMemberAsync(2));
        Assert.That((await member.MemberListAsync()).Select(m => m.Id), Is.EqualTo(new ulong[] { 1, 2, 3 }));
    }

    [Test]
    public void OptionsRefuseAZeroMemberIdAMissingDirectoryAndABadInitialMemberList()
    {
        using var network = new InProcessNetwork();
        var zeroId = Assert.ThrowsAsync<ArgumentException>(async () => await ReplicatedStore.StartAsync(new ReplicatedStoreOptions { DataDirectory = "/x" }, network.CreateTransport(1)));
        Assert.That(zeroId!.ParamName, Is.EqualTo("MemberId"));
        var noDirectory = Assert.ThrowsAsync<ArgumentException>(async () => await ReplicatedStore.StartAsync(new ReplicatedStoreOptions { MemberId = 1 }, network.CreateTransport(1)));
        Assert.That(noDirectory!.ParamName, Is.EqualTo("DataDirectory"));
        var notIncluded = Assert.ThrowsAsync<ArgumentException>(async () => await ReplicatedStore.StartAsync(new ReplicatedStoreOptions { MemberId = 1, DataDirectory = "/x", InitialMembers = [Member(2)] }, network.CreateTransport(1)));
        Assert.That(notIncluded!.ParamName, Is.EqualTo("InitialMembers"));

        var empty = Assert.Throws<ArgumentOutOfRangeException>(() => _ = new ReplicatedStoreOptions { InitialMembers = [] });
        Assert.That(empty!.ParamName, Is.EqualTo("InitialMembers"));
        var twice = Assert.Throws<ArgumentException>(() => _ = new ReplicatedStoreOptions { InitialMembers = [Member(1), Member(1)] });
        Assert.That(twice!.Message, Does.Contain("twice"));
        var learner = Assert.Throws<ArgumentException>(() => _ = new ReplicatedStoreOptions { InitialMembers = [Member(1), Member(2, learner: true)] });
        Assert.That(learner!.Message, Does.Contain("learner"));
        var badUrl = Assert.Throws<ArgumentException>(() => _ = new ReplicatedStoreOptions { InitialMembers = [new MemberInfo(1, "a", ["tcp://:0"], [])] });
        Assert.That(badUrl!.Message, Does.Contain("tcp://:0"));
        var negative = Assert.Throws<ArgumentOutOfRangeException>(() => _ = new ReplicatedStoreOptions { HashCheckInterval = TimeSpan.FromSeconds(-1) });
        Assert.That(negative!.ParamName, Is.EqualTo("HashCheckInterval"));
        Assert.Throws<ArgumentNullException>(() => _ = new ReplicatedStoreOptions { Raft = null! });
        Assert.Throws<ArgumentNullException>(() => _ = new ReplicatedStoreOptions { Store = null! });
    }

    [Test]
    public async Task AMemberStartedWithAnotherClusterIdRefusesTheData()
    {
        await using var cluster = await ReplicatedCluster.StartAsync(1, seed: 2103);
        ulong clusterId = cluster[1].ClusterId;
        await cluster.StopMemberAsync(1);
        var refused = Assert.ThrowsAsync<InvalidOperationException>(async () => await cluster.StartMemberAsync(1, cluster.InitialMembers, o => o with { ClusterId = clusterId + 1 }));
        Assert.That(refused!.Message, Does.Contain($"{clusterId:x16}"));
        await cluster.StartMemberAsync(1, cluster.InitialMembers, o => o with { ClusterId = clusterId });
    }
}
