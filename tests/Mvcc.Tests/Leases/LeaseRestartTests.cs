using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Leases;

/// <summary>Leases persist in the B+tree; downtime does not expire them: a reopened store gives each its full granted TTL again (etcd's recovery).</summary>
public sealed class LeaseRestartTests
{
    [Test]
    public async Task ARestartKeepsLeasesAndTheirKeysWithRefreshedTtls()
    {
        var clock = LeaseTestSupport.Clock();
        var fs = new FaultInjectingFileSystem(1);
        long shortLease;
        long longLease;
        long revoked;
        await using (var store = LeaseTestSupport.Open(fs, clock))
        {
            shortLease = store.Grant(10);
            longLease = store.Grant(100);
            revoked = store.Grant(100);
            store.Put("s1", "v", lease: shortLease);
            store.Put("s2", "v", lease: shortLease);
            store.Put("l", "v", lease: longLease);
            store.Put("moved", "v", lease: revoked);
            store.Put("moved", "v", lease: longLease);
            store.Put("gone", "v", lease: revoked);
            store.Revoke(revoked);
            store.Advance(clock, TimeSpan.FromSeconds(8));
        }

        clock.Advance(TimeSpan.FromHours(1));

        await using (var store = LeaseTestSupport.Open(fs, clock))
        {
            Assert.That(store.LeaseLeases().Leases, Is.EqualTo(new[] { shortLease, longLease }.Order()));
            var ttl = store.LeaseTimeToLive(shortLease, keys: true);
            Assert.That((ttl.TtlSeconds, ttl.GrantedTtlSeconds), Is.EqualTo((10L, 10L)), "an hour down and 8 s used, the TTL is full again");
            Assert.That(store.KeysOf(shortLease), Is.EqualTo(new[] { "s1", "s2" }));
            Assert.That(store.KeysOf(longLease), Is.EqualTo(new[] { "l", "moved" }));
            Assert.That(store.LeaseTimeToLive(revoked).TtlSeconds, Is.EqualTo(-1));

            long fresh = store.Grant(10);
            Assert.That(fresh, Is.Not.AnyOf(shortLease, longLease, revoked), "an automatic id is not reused after a restart");

            store.Advance(clock, TimeSpan.FromSeconds(10));
            Assert.That(store.KeysWithLeases().Select(k => k.Key), Is.EqualTo(new[] { "l", "moved" }), "the short lease expires 10 s after the restart");
        }
    }

    [Test]
    public async Task ADetachmentSurvivesARestart()
    {
        var clock = LeaseTestSupport.Clock();
        var fs = new FaultInjectingFileSystem(1);
        long lease;
        await using (var store = LeaseTestSupport.Open(fs, clock))
        {
            lease = store.Grant(10);
            store.Put("k", "1", lease: lease);
            store.Put("k", "2");
            store.Put("d", "1", lease: lease);
            store.Delete("d");
            store.Put("d", "2");
        }

        await using (var store = LeaseTestSupport.Open(fs, clock))
        {
            Assert.That(store.KeysOf(lease), Is.Empty);
            store.Revoke(lease);
            Assert.That(store.KeysWithLeases(), Is.EqualTo(new[] { ("d", 0L), ("k", 0L) }));
        }
    }

    [Test]
    public async Task AStoreWrittenBeforeLeasesExistedOpensAndGetsALeaseBucket()
    {
        var clock = LeaseTestSupport.Clock();
        var fs = new FaultInjectingFileSystem(1);
        await using (var store = LeaseTestSupport.Open(fs, clock))
        {
            store.Put("k", "v");
        }

        LeaseFormatTests.DropLeaseBucket(fs);

        await using (var store = LeaseTestSupport.Open(fs, clock))
        {
            Assert.That(store.Get("k").Count, Is.EqualTo(1));
            long lease = store.Grant(10);
            store.Put("k", "v", lease: lease);
        }

        await using (var store = LeaseTestSupport.Open(fs, clock))
        {
            Assert.That(store.LeaseLeases().Leases, Has.Count.EqualTo(1));
        }
    }
}
