using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Mvcc.Leases;
using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.Mvcc.Watch;
using EmbeddedRaft.Storage.BTree;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>The replicated store's options bind from configuration, nested sections included, without touching anybody else's defaults.</summary>
public sealed class ReplicatedStoreOptionsTests
{
    [Test]
    public void NestedSectionsBindIntoFreshOptionsAndLeaveTheSharedDefaultsAlone()
    {
        // The binder binds a nested section into the property's current value through its init
        // setters: were that value a shared XOptions.Default, one host's configuration would change
        // the defaults of every other store in the process.
        var options = OptionsBinding.Bind<ReplicatedStoreOptions>(new Dictionary<string, string?>
        {
            ["MemberId"] = "2",
            ["DataDirectory"] = "/data/member-2",
            ["Raft:TickInterval"] = "00:00:00.250",
            ["Store:MaxTxnOps"] = "64",
            ["Store:BTree:PageCacheSizeBytes"] = "1048576",
            ["Store:Leases:MinTtlSeconds"] = "7",
            ["Store:Watch:MaxBufferedEvents"] = "99",
        });

        Assert.That(
            (options.MemberId, options.DataDirectory, options.Raft.TickInterval, options.Store.MaxTxnOps, options.Store.Leases.MinTtlSeconds, options.Store.Watch.MaxBufferedEvents),
            Is.EqualTo((2UL, "/data/member-2", TimeSpan.FromMilliseconds(250), 64, 7L, 99)));
        Assert.That(RaftNodeOptions.Default, Is.EqualTo(new RaftNodeOptions()));
        Assert.That(MvccStoreOptions.Default, Is.EqualTo(new MvccStoreOptions()));
        Assert.That(BTreeOptions.Default, Is.EqualTo(new BTreeOptions()));
        Assert.That(LeaseOptions.Default, Is.EqualTo(new LeaseOptions()));
        Assert.That(WatchOptions.Default, Is.EqualTo(new WatchOptions()));
    }
}
