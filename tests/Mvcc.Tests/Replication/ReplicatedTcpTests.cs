using EmbeddedRaft.Consensus;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Transport.Tcp;
using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Replication.ReplicatedCluster;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>
/// Over a real <see cref="TcpTransport"/> on loopback, whose bootstrapping members' transports are
/// given no peer addresses at all: the cluster forms only because each store points its transport
/// at the members' first peer URLs from the registry, at start and as members are added.
/// </summary>
public sealed class ReplicatedTcpTests
{
    private const ulong ClusterId = 0x5EED;

    // Seeds the members' Raft cores (seed x 100 + id) and, x 100, the shared disk.
    private const int Seed = 24;

    [Test]
    public async Task TheStoreKeepsTheTcpTransportsPeerAddressesEqualToTheRegistrysPeerUrls()
    {
        var transports = new Dictionary<ulong, TcpTransport>();
        var stores = new Dictionary<ulong, ReplicatedStore>();
        var disk = new FaultInjectingFileSystem(Seed * 100);
        try
        {
            foreach (ulong id in new ulong[] { 1, 2, 3 })
            {
                transports[id] = new TcpTransport(new TcpTransportOptions { NodeId = id, ClusterId = ClusterId, ListenAddress = "127.0.0.1:0" });
            }

            // A joining member's transport must know the members it joins (it accepts connections
            // only from known peers), as etcd's --initial-cluster for an existing cluster.
            transports[4] = new TcpTransport(new TcpTransportOptions
            {
                NodeId = 4,
                ClusterId = ClusterId,
                ListenAddress = "127.0.0.1:0",
                Peers = transports.ToDictionary(t => t.Key, t => $"127.0.0.1:{t.Value.LocalEndPoint.Port}"),
            });

            MemberInfo Url(ulong id, bool learner = false) => new(id, $"m{id}", [$"tcp://127.0.0.1:{transports[id].LocalEndPoint.Port}"], [], learner);
            MemberInfo[] initial = [Url(1), Url(2), Url(3)];
            foreach (var member in initial)
            {
                stores[member.Id] = await ReplicatedStore.StartAsync(Options(member.Id, initial, disk), transports[member.Id]).AsTask().WaitAsync(Waits.Limit);
            }

            var put = await ReplicatedReadTests.ClientAsync(() => stores[2].PutAsync(new PutRequest { Key = Key("over"), Value = Key("tcp") }));
            var read = await ReplicatedReadTests.ClientAsync(() => stores[3].RangeAsync(new RangeRequest { Key = Key("over") }));
            Assert.That(read.Kvs[0].ModRevision, Is.EqualTo(put.Header.Revision));

            // Member 4 joins: the others learn its address from the registry entry.
            await ReplicatedReadTests.ClientAsync(() => stores[1].AddMemberAsync(Url(4, learner: true)));
            stores[4] = await ReplicatedStore.StartAsync(Options(4, null, disk), transports[4]).AsTask().WaitAsync(Waits.Limit);
            var joined = await ReplicatedReadTests.ClientAsync(() => stores[4].RangeAsync(new RangeRequest { Key = Key("over") }));
            Assert.That(joined.Kvs, Has.Count.EqualTo(1));
            var members = await ReplicatedReadTests.ClientAsync(() => stores[4].MemberListAsync());
            Assert.That(members.Select(m => m.Id), Is.EqualTo(new ulong[] { 1, 2, 3, 4 }));
        }
        finally
        {
            TestContext.Out.WriteLine("statuses: " + string.Join("; ", stores.Values.Select(s => $"{s.MemberId}: leader {s.Status.LeaderId} applied {s.Status.RaftAppliedIndex} stopped {s.Status.StoppedCause?.Message}")));
            foreach (var store in stores.Values)
            {
                await store.DisposeAsync();
            }

            foreach (var transport in transports.Values)
            {
                await transport.DisposeAsync();
            }
        }
    }

    private static ReplicatedStoreOptions Options(ulong id, IReadOnlyList<MemberInfo>? initial, FaultInjectingFileSystem disk) => new()
    {
        MemberId = id,
        DataDirectory = $"/tcp{id}",
        InitialMembers = initial,
        ClusterId = ClusterId,
        FileSystem = disk,
        Raft = NodeOptions(Seed, id),
    };
}
