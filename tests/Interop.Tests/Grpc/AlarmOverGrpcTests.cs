using EmbeddedRaft.Interop.Tests.Etcdctl;
using EmbeddedRaft.Samples.EtcdCompatibleServer;
using EmbeddedRaft.Samples.EtcdCompatibleServer.Etcdserverpb;
using Grpc.Core;
using static EmbeddedRaft.Interop.Tests.Grpc.EtcdClients;
using static EmbeddedRaft.Interop.Tests.Grpc.KvOverGrpcTests;

namespace EmbeddedRaft.Interop.Tests.Grpc;

/// <summary>
/// The corruption alarm as etcd's clients see it: raised when one member's store is damaged behind
/// the log's back (the store's test hook) and the hash check runs; listed by every member, writes
/// refused with etcd's "corrupt cluster"; disarmed through the log (gRPC, and `etcdctl alarm disarm`).
/// </summary>
[TestFixture]
public sealed class AlarmOverGrpcTests
{
    [Test]
    public async Task TheCorruptionAlarmIsListedOnEveryMemberAndDisarmedForTheWholeCluster()
    {
        await using OurEtcdCluster cluster = await OurEtcdCluster.StartOursAsync();
        List<EtcdClients> clients = [.. cluster.Cluster.Members.Select(m => new EtcdClients(m.ClientUrl))];
        try
        {
            await RaiseCorruptionAlarmAsync(cluster, clients[0]);
            for (int i = 0; i < 3; i++)
            {
                AlarmResponse listed = await clients[i].Maintenance.AlarmAsync(new AlarmRequest { Action = AlarmRequest.Types.AlarmAction.Get });
                Assert.That(listed.Alarms.Select(a => (a.MemberID, a.Alarm)), Is.EqualTo(new[] { (cluster.Members[i].Id, AlarmType.Corrupt) }), $"member {i + 1}");
                await AssertEtcdError(() => clients[i].Kv.PutAsync(new PutRequest { Key = Bytes("alarm/x"), Value = Bytes("1") }).ResponseAsync,
                    StatusCode.DataLoss, "etcdserver: corrupt cluster");
                StatusResponse status = await clients[i].Maintenance.StatusAsync(new StatusRequest());
                Assert.That(status.Errors, Does.Contain($"memberID:{cluster.Members[i].Id} alarm:CORRUPT "));
            }

            // A NOSPACE alarm is not raised: deactivating it clears nothing and answers no entry (as etcd).
            AlarmResponse none = await clients[1].Maintenance.AlarmAsync(new AlarmRequest { Action = AlarmRequest.Types.AlarmAction.Deactivate, MemberID = cluster.Members[1].Id, Alarm = AlarmType.Nospace });
            Assert.That(none.Alarms, Is.Empty);

            AlarmResponse disarmed = await clients[1].Maintenance.AlarmAsync(new AlarmRequest { Action = AlarmRequest.Types.AlarmAction.Deactivate, MemberID = cluster.Members[1].Id, Alarm = AlarmType.Corrupt });
            Assert.That(disarmed.Alarms.Select(a => (a.MemberID, a.Alarm)), Is.EqualTo(new[] { (cluster.Members[1].Id, AlarmType.Corrupt) }));

            // Disarmed through the log: every member takes writes again once it applied it, which
            // a linearizable read on that member waits for.
            for (int i = 0; i < 3; i++)
            {
                await clients[i].Kv.RangeAsync(new RangeRequest { Key = Bytes("alarm/") });
                await clients[i].PutRetryingAsync($"alarm/after/{i}", "1");
                Assert.That((await clients[i].Maintenance.AlarmAsync(new AlarmRequest())).Alarms, Is.Empty, $"member {i + 1}");
            }
        }
        finally
        {
            clients.ForEach(c => c.Dispose());
        }
    }

    [Test]
    public async Task EtcdctlListsAndDisarmsTheAlarmAsItPrintsEtcds()
    {
        await using OurEtcdCluster cluster = await OurEtcdCluster.StartOursAsync();
        using var client = new EtcdClients(cluster.Cluster.Members[0].ClientUrl);
        using var etcdctl = new EtcdctlRunner(cluster);
        Assert.That(await etcdctl.RunAsync("etcdctl alarm list"), Is.Empty);

        await RaiseCorruptionAlarmAsync(cluster, client);

        // etcdctl prints an alarm as Go's %+v of etcd's AlarmMember; the member id is normalised to its name.
        Assert.That(await etcdctl.RunAsync("etcdctl alarm list"), Is.EqualTo(new[] { "memberID:<m1> alarm:CORRUPT " }));
        Assert.That(await etcdctl.RunAsync("etcdctl put k v"), Is.EqualTo(new[] { "Error: etcdserver: corrupt cluster", "[exit 1]" }));
        Assert.That(await etcdctl.RunAsync("etcdctl alarm disarm"), Is.EqualTo(new[] { "memberID:<m1> alarm:CORRUPT " }), "disarm lists what it disarmed");
        Assert.That(await etcdctl.RunAsync("etcdctl alarm list"), Is.Empty);
        Assert.That(await etcdctl.RunAsync("@2 etcdctl alarm list"), Is.Empty, "disarmed on every member");
        Assert.That(await etcdctl.RunAsync("etcdctl put k v"), Is.EqualTo(new[] { "OK" }));
    }

    /// <summary>Damages a follower's store behind the log's back and runs the hash check, until every member raised the alarm.</summary>
    private static async Task RaiseCorruptionAlarmAsync(OurEtcdCluster cluster, EtcdClients client)
    {
        for (int i = 0; i < 5; i++)
        {
            await client.PutRetryingAsync($"alarm/{i}", "v");
        }

        List<EtcdClusterMember> members = [.. cluster.Cluster.Members];
        ulong leader = members[0].Store.Status.LeaderId;
        EtcdClusterMember damaged = members.First(m => m.Info.Id != leader);

        // Every member has applied the puts (a linearizable read on each returns once it has), then one is damaged.
        foreach (EtcdClusterMember member in members)
        {
            using var reader = new EtcdClients(member.ClientUrl);
            await reader.Kv.RangeAsync(new RangeRequest { Key = Bytes("alarm/") });
        }

        await damaged.Store.Mvcc.CorruptStoredValueForTestsAsync(2);
        await members.First(m => m.Info.Id == leader).Store.ProposeHashCheckAsync();
        await Task.WhenAll(members.Select(m => m.Store.CorruptAlarmRaised)).WaitAsync(TestSupport.Waits.Limit);
    }
}
