using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Leases;

/// <summary>etcd's lease API on one store: grant, list, time-to-live, keep-alive, revoke, and how puts and deletes attach and detach keys.</summary>
public sealed class LeaseBasicsTests
{
    [Test]
    public async Task AGrantWithoutIdGetsAFreshPositiveIdAndTheTtlAskedFor()
    {
        var clock = LeaseTestSupport.Clock();
        await using var store = LeaseTestSupport.Open(new FaultInjectingFileSystem(1), clock);
        var first = await store.LeaseGrantAsync(30);
        var second = await store.LeaseGrantAsync(60);
        Assert.That(first.Id, Is.Positive);
        Assert.That(second.Id, Is.Positive.And.Not.EqualTo(first.Id));
        Assert.That((first.TtlSeconds, second.TtlSeconds), Is.EqualTo((30L, 60L)));
        Assert.That(first.Header.Revision, Is.EqualTo(1), "a grant creates no revision");
        Assert.That(store.LeaseLeases().Leases, Is.EqualTo(new[] { first.Id, second.Id }.Order()));
    }

    [Test]
    public async Task AGrantBelowTheMinimumTtlIsRaisedToIt()
    {
        var clock = LeaseTestSupport.Clock();
        await using var store = LeaseTestSupport.Open(new FaultInjectingFileSystem(1), clock, new LeaseOptions { MinTtlSeconds = 5 });
        Assert.That((await store.LeaseGrantAsync(1)).TtlSeconds, Is.EqualTo(5));
        Assert.That((await store.LeaseGrantAsync(-3)).TtlSeconds, Is.EqualTo(5));
        Assert.That((await store.LeaseGrantAsync(6)).TtlSeconds, Is.EqualTo(6));
    }

    [Test]
    public async Task TheErrorsAreEtcds()
    {
        var clock = LeaseTestSupport.Clock();
        await using var store = LeaseTestSupport.Open(new FaultInjectingFileSystem(1), clock);
        store.Grant(10, id: 7);

        var exists = Assert.ThrowsAsync<MvccException>(async () => await store.LeaseGrantAsync(10, id: 7))!;
        Assert.That((exists.Error, exists.EtcdMessage, exists.GrpcStatusCode), Is.EqualTo((MvccError.LeaseExists, "etcdserver: lease already exists", 9)));

        var tooLarge = Assert.ThrowsAsync<MvccException>(async () => await store.LeaseGrantAsync(LeaseOptions.MaxTtlSeconds + 1))!;
        Assert.That((tooLarge.Error, tooLarge.EtcdMessage, tooLarge.GrpcStatusCode), Is.EqualTo((MvccError.LeaseTtlTooLarge, "etcdserver: too large lease TTL", 11)));
        Assert.That((await store.LeaseGrantAsync(LeaseOptions.MaxTtlSeconds)).TtlSeconds, Is.EqualTo(LeaseOptions.MaxTtlSeconds), "the maximum itself is allowed");

        foreach (var call in new Func<Task>[]
        {
            async () => await store.LeaseRevokeAsync(8),
            async () => await store.LeaseKeepAliveAsync(8),
            async () => await store.PutAsync(new PutRequest { Key = B("k"), Value = B("v"), Lease = 8 }),
            async () => await store.TxnAsync(new TxnRequest { Success = [RequestOp.Put(new PutRequest { Key = B("k"), Lease = 8 })] }),
        })
        {
            var notFound = Assert.ThrowsAsync<MvccException>(() => call())!;
            Assert.That((notFound.Error, notFound.EtcdMessage, notFound.GrpcStatusCode), Is.EqualTo((MvccError.LeaseNotFound, "etcdserver: requested lease not found", 5)));
        }

        Assert.That(store.Revision, Is.EqualTo(1), "nothing refused was written");
        Assert.That(store.LeaseLeases().Leases, Has.Count.EqualTo(2));
    }

    [Test]
    public async Task LeasesAreListedSoonestToExpireFirstAsEtcdSortsThem()
    {
        var clock = LeaseTestSupport.Clock();
        await using var store = LeaseTestSupport.Open(new FaultInjectingFileSystem(1), clock);
        store.Grant(60, id: 1);
        store.Grant(30, id: 2);
        store.Grant(30, id: 3);
        store.Grant(90, id: 4);
        Assert.That(store.LeaseLeases().Leases, Is.EqualTo(new long[] { 2, 3, 1, 4 }), "by expiry, ties by id");
        store.Advance(clock, TimeSpan.FromSeconds(20));
        store.KeepAlive(2);
        Assert.That(store.LeaseLeases().Leases, Is.EqualTo(new long[] { 3, 2, 1, 4 }), "2 now runs to 50 s");
    }

    [Test]
    public async Task TimeToLiveOfAnUnknownLeaseIsMinusOneAsEtcdAnswers()
    {
        var clock = LeaseTestSupport.Clock();
        await using var store = LeaseTestSupport.Open(new FaultInjectingFileSystem(1), clock);
        var answer = store.LeaseTimeToLive(42, keys: true);
        Assert.That((answer.Id, answer.TtlSeconds, answer.GrantedTtlSeconds, answer.Keys.Count), Is.EqualTo((42L, -1L, 0L, 0)));
    }

    [Test]
    public async Task TimeToLiveCountsDownInWholeSecondsAndKeepAliveRestartsIt()
    {
        var clock = LeaseTestSupport.Clock();
        await using var store = LeaseTestSupport.Open(new FaultInjectingFileSystem(1), clock);
        long lease = store.Grant(10);
        Assert.That(store.LeaseTimeToLive(lease).TtlSeconds, Is.EqualTo(10));
        store.Advance(clock, TimeSpan.FromSeconds(3.5));
        var ttl = store.LeaseTimeToLive(lease);
        Assert.That((ttl.TtlSeconds, ttl.GrantedTtlSeconds), Is.EqualTo((6L, 10L)), "6.5 s left, rounded down as etcd");
        Assert.That(store.KeepAlive(lease), Is.EqualTo(10));
        Assert.That(store.LeaseTimeToLive(lease).TtlSeconds, Is.EqualTo(10));
    }

    [Test]
    public async Task APutWithALeaseAttachesTheKeyAndAnotherPutMovesOrDetachesIt()
    {
        var clock = LeaseTestSupport.Clock();
        await using var store = LeaseTestSupport.Open(new FaultInjectingFileSystem(1), clock);
        long a = store.Grant(60);
        long b = store.Grant(60);

        store.Put("k", "1", lease: a);
        store.Put("j", "1", lease: a);
        Assert.That(store.KeysOf(a), Is.EqualTo(new[] { "j", "k" }));
        Assert.That(store.Get("k").Kvs[0].Lease, Is.EqualTo(a));

        store.Put("k", "2", lease: b);
        Assert.That((store.KeysOf(a), store.KeysOf(b)), Is.EqualTo((new List<string> { "j" }, new List<string> { "k" })), "moved to b");

        store.Put("k", "3");
        Assert.That(store.KeysOf(b), Is.Empty, "a put without a lease detaches");
        Assert.That(store.Get("k").Kvs[0].Lease, Is.EqualTo(0));

        store.Put("k", "4", lease: b);
        await store.PutAsync(new PutRequest { Key = B("k"), Value = B("5"), IgnoreLease = true });
        Assert.That(store.KeysOf(b), Is.EqualTo(new[] { "k" }), "IgnoreLease keeps the attachment");

        store.Delete("j");
        Assert.That(store.KeysOf(a), Is.Empty, "a delete detaches");
    }

    [Test]
    public async Task RevokeDeletesEveryAttachedKeyInOneRevisionAndTheHistoryShowsIt()
    {
        var clock = LeaseTestSupport.Clock();
        await using var store = LeaseTestSupport.Open(new FaultInjectingFileSystem(1), clock);
        long lease = store.Grant(60);
        store.Put("a", "1", lease: lease);
        store.Put("b", "1", lease: lease);
        store.Put("c", "1");
        store.Txn(new TxnRequest { Success = [RequestOp.Put(new PutRequest { Key = B("d"), Value = B("1"), Lease = lease })] });
        long before = store.Revision;

        var revoked = store.Revoke(lease);

        Assert.That(revoked.Header.Revision, Is.EqualTo(before + 1));
        Assert.That(store.Revision, Is.EqualTo(before + 1), "one revision for all three deletes");
        Assert.That(store.KeysWithLeases(), Is.EqualTo(new[] { ("c", 0L) }));
        Assert.That(store.LeaseLeases().Leases, Is.Empty);
        foreach (string key in new[] { "a", "b", "d" })
        {
            Assert.That(store.Get(key, revision: before).Count, Is.EqualTo(1), $"{key} is in the history before the revoke");
            Assert.That(store.Get(key, revision: before + 1).Count, Is.EqualTo(0), $"{key} is deleted at the revoke's revision");
        }

        Assert.ThrowsAsync<MvccException>(async () => await store.LeaseRevokeAsync(lease), "a second revoke finds nothing");
    }

    [Test]
    public async Task RevokingALeaseWithoutKeysCreatesNoRevision()
    {
        var clock = LeaseTestSupport.Clock();
        await using var store = LeaseTestSupport.Open(new FaultInjectingFileSystem(1), clock);
        store.Put("x", "1");
        long lease = store.Grant(60);
        Assert.That(store.Revoke(lease).Header.Revision, Is.EqualTo(2));
        Assert.That(store.Revision, Is.EqualTo(2));
    }

    [Test]
    public async Task AKeyDeletedAndRecreatedWithoutTheLeaseSurvivesItsRevoke()
    {
        var clock = LeaseTestSupport.Clock();
        await using var store = LeaseTestSupport.Open(new FaultInjectingFileSystem(1), clock);
        long lease = store.Grant(60);
        store.Put("k", "1", lease: lease);
        store.Delete("k");
        store.Put("k", "2");
        store.Revoke(lease);
        Assert.That(store.KeysWithLeases(), Is.EqualTo(new[] { ("k", 0L) }));
    }

    [Test]
    public async Task AGrantOrRevokeCarriesItsConsistentIndex()
    {
        var clock = LeaseTestSupport.Clock();
        await using var store = LeaseTestSupport.Open(new FaultInjectingFileSystem(1), clock);
        long lease = (await store.LeaseGrantAsync(60, consistentIndex: 5)).Id;
        Assert.That(store.ConsistentIndex, Is.EqualTo(5UL));
        Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await store.LeaseRevokeAsync(lease, consistentIndex: 5));
        await store.LeaseRevokeAsync(lease, consistentIndex: 6);
        Assert.That(store.ConsistentIndex, Is.EqualTo(6UL));
    }
}
