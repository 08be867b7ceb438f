using EmbeddedRaft.Samples.EtcdCompatibleServer.Etcdserverpb;
using Grpc.Core;
using static EmbeddedRaft.Interop.Tests.Grpc.EtcdClients;
using static EmbeddedRaft.Interop.Tests.Grpc.KvOverGrpcTests;

namespace EmbeddedRaft.Interop.Tests.Grpc;

/// <summary>etcd's Lease service, with the keep-alive stream, from every member.</summary>
[TestFixture]
public sealed class LeaseOverGrpcTests : OverGrpcFixture
{
    [Test]
    public async Task ALeaseIsGrantedKeptAliveListedAndRevokedWithItsKeys()
    {
        LeaseGrantResponse granted = await Clients[1].Lease.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 });
        Assert.That(granted.ID, Is.GreaterThan(0));
        Assert.That(granted.TTL, Is.EqualTo(60));
        await Clients[2].Kv.PutAsync(new PutRequest { Key = Bytes("lease/a"), Value = Bytes("1"), Lease = granted.ID });
        await Clients[0].Kv.PutAsync(new PutRequest { Key = Bytes("lease/b"), Value = Bytes("2"), Lease = granted.ID });

        LeaseTimeToLiveResponse ttl = await Clients[2].Lease.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = granted.ID, Keys = true });
        Assert.That(ttl.GrantedTTL, Is.EqualTo(60));
        Assert.That(ttl.TTL, Is.InRange(1, 60));
        Assert.That(ttl.Keys.Select(k => k.ToStringUtf8()), Is.EquivalentTo(new[] { "lease/a", "lease/b" }));

        // The keep-alive stream, on a member that may not be the leader: one answer per request.
        using (AsyncDuplexStreamingCall<LeaseKeepAliveRequest, LeaseKeepAliveResponse> keepAlive = Clients[2].Lease.LeaseKeepAlive())
        {
            for (int i = 0; i < 3; i++)
            {
                await keepAlive.RequestStream.WriteAsync(new LeaseKeepAliveRequest { ID = granted.ID });
                Assert.That(await keepAlive.ResponseStream.MoveNext(CancellationToken.None), Is.True);
                Assert.That(keepAlive.ResponseStream.Current.ID, Is.EqualTo(granted.ID));
                Assert.That(keepAlive.ResponseStream.Current.TTL, Is.EqualTo(60), "renewed to the granted TTL");
            }

            // A lease that does not exist answers TTL 0 on the stream, which goes on.
            await keepAlive.RequestStream.WriteAsync(new LeaseKeepAliveRequest { ID = granted.ID + 1 });
            Assert.That(await keepAlive.ResponseStream.MoveNext(CancellationToken.None), Is.True);
            Assert.That(keepAlive.ResponseStream.Current.TTL, Is.Zero);
            await keepAlive.RequestStream.CompleteAsync();
        }

        LeaseLeasesResponse leases = await Clients[0].Lease.LeaseLeasesAsync(new LeaseLeasesRequest());
        Assert.That(leases.Leases.Select(l => l.ID), Does.Contain(granted.ID));

        await Clients[1].Lease.LeaseRevokeAsync(new LeaseRevokeRequest { ID = granted.ID });
        Assert.That((await Clients[2].Kv.RangeAsync(new RangeRequest { Key = Bytes("lease/"), RangeEnd = Bytes("lease0") })).Kvs, Is.Empty, "a revoked lease's keys are deleted");
        LeaseTimeToLiveResponse gone = await Clients[0].Lease.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = granted.ID });
        Assert.That(gone.TTL, Is.EqualTo(-1), "etcd answers a missing lease's time-to-live with -1");
        await AssertEtcdError(() => Clients[2].Lease.LeaseRevokeAsync(new LeaseRevokeRequest { ID = granted.ID }).ResponseAsync,
            StatusCode.NotFound, "etcdserver: requested lease not found");
    }

    [Test]
    public async Task AChosenIdIsKeptAndCannotBeGrantedTwice()
    {
        LeaseGrantResponse granted = await Clients[0].Lease.LeaseGrantAsync(new LeaseGrantRequest { TTL = 30, ID = 0x7777 });
        Assert.That(granted.ID, Is.EqualTo(0x7777));
        await AssertEtcdError(() => Clients[1].Lease.LeaseGrantAsync(new LeaseGrantRequest { TTL = 30, ID = 0x7777 }).ResponseAsync,
            StatusCode.FailedPrecondition, "etcdserver: lease already exists");
    }
}
