using EmbeddedRaft.Samples.EtcdCompatibleServer;
using EmbeddedRaft.Samples.EtcdCompatibleServer.Etcdserverpb;
using EmbeddedRaft.Samples.EtcdCompatibleServer.Mvccpb;
using static EmbeddedRaft.Interop.Tests.Grpc.EtcdClients;

namespace EmbeddedRaft.Interop.Tests.Grpc;

/// <summary>A watch stream on a follower and a client writing through it, while the leader stops.</summary>
[TestFixture]
public sealed class LeaderChangeOverGrpcTests
{
    [Test]
    public async Task AWatchOnAFollowerDeliversExactlyTheCommittedHistoryAcrossALeaderChange()
    {
        await using OurEtcdCluster cluster = await OurEtcdCluster.StartOursAsync();
        List<EtcdClusterMember> members = [.. cluster.Cluster.Members];
        ulong leaderId = members[0].Store.Status.LeaderId;
        EtcdClusterMember leader = members.Single(m => m.Info.Id == leaderId);
        EtcdClusterMember follower = members.First(m => m.Info.Id != leaderId);
        using var client = new EtcdClients(follower.ClientUrl);
        using var watch = new WatchCall(client);
        long id = await watch.CreateAndConfirmAsync(new WatchCreateRequest { Key = Bytes("lc/"), RangeEnd = Bytes("lc0") });

        for (int i = 0; i < 5; i++)
        {
            await client.PutRetryingAsync($"lc/before/{i}", "v");
        }

        await leader.DisposeAsync();
        for (int i = 0; i < 5; i++)
        {
            // Each put is retried through the election: a retry may apply a put twice (etcd's
            // clients have the same ambiguity), which the history check below allows for.
            await client.PutRetryingAsync($"lc/after/{i}", "v");
        }

        PutResponse last = await client.PutRetryingAsync("lc/zz-last", "v");
        Assert.That(follower.Store.Status.LeaderId, Is.Not.EqualTo(leaderId).And.Not.Zero, "a new leader took over");

        List<Event> events = [.. (await watch.ReadUntilAsync(r => r.SelectMany(x => x.Events).Any(e => e.Kv.Key.ToStringUtf8() == "lc/zz-last")))
            .Where(r => r.WatchId == id).SelectMany(r => r.Events)];

        // The committed history, read independently: every key's versions, from the store's ranges.
        RangeResponse now = await client.Kv.RangeAsync(new RangeRequest { Key = Bytes("lc/"), RangeEnd = Bytes("lc0"), Revision = last.Header.Revision });
        Assert.That(events.Select(e => e.Kv.ModRevision), Is.Ordered.Ascending.And.Unique, "in revision order, none twice");
        Assert.That(events.All(e => e.Type == Event.Types.EventType.Put), Is.True);
        Assert.That(events.Select(e => e.Kv.Key.ToStringUtf8()).Distinct(), Is.EquivalentTo(now.Kvs.Select(kv => kv.Key.ToStringUtf8())), "every committed key, and only those");
        foreach (KeyValue kv in now.Kvs)
        {
            List<Event> ofKey = [.. events.Where(e => e.Kv.Key == kv.Key)];
            Assert.That(ofKey, Has.Count.EqualTo(kv.Version), $"{kv.Key.ToStringUtf8()}: one event per version");
            Assert.That(ofKey[^1].Kv.ModRevision, Is.EqualTo(kv.ModRevision));
            Assert.That(ofKey[0].Kv.CreateRevision, Is.EqualTo(kv.CreateRevision));
        }
    }
}
