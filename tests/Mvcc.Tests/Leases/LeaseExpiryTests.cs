using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using Microsoft.Extensions.Time.Testing;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Leases;

/// <summary>
/// Expiry on a manual clock (FakeTimeProvider): a lease whose TTL runs out is revoked by the store's
/// next expiry check, deleting its keys in one revision; keep-alives prevent it; a mass expiry is
/// revoked at the configured rate; with RevokeExpired off the store only reports expired leases.
/// </summary>
public sealed class LeaseExpiryTests
{
    private static readonly TimeSpan Check = LeaseOptions.DefaultExpiryCheckInterval;

    [Test]
    public async Task AnExpiredLeaseIsRevokedAtItsTtlWithItsKeysDeletedInOneRevision()
    {
        var clock = LeaseTestSupport.Clock();
        await using var store = LeaseTestSupport.Open(new FaultInjectingFileSystem(1), clock);
        long lease = store.Grant(10);
        store.Put("a", "1", lease: lease);
        store.Put("b", "1", lease: lease);
        store.Put("c", "1");
        long before = store.Revision;

        store.Advance(clock, TimeSpan.FromSeconds(10) - TimeSpan.FromMilliseconds(1));
        Assert.That(store.KeysWithLeases(), Has.Count.EqualTo(3), "1 ms before the TTL runs out nothing is revoked");
        Assert.That(store.LeaseTimeToLive(lease).TtlSeconds, Is.EqualTo(0));

        store.Advance(clock, TimeSpan.FromMilliseconds(1));
        Assert.That(store.KeysWithLeases(), Is.EqualTo(new[] { ("c", 0L) }), "the check at the TTL revokes it");
        Assert.That(store.Revision, Is.EqualTo(before + 1), "both deletes in one revision");
        Assert.That(store.Get("a", revision: before).Count, Is.EqualTo(1));
        Assert.That(store.Get("a", revision: before + 1).Count, Is.EqualTo(0));
        Assert.That(store.LeaseTimeToLive(lease).TtlSeconds, Is.EqualTo(-1));
        Assert.That(store.LeaseLeases().Leases, Is.Empty);
    }

    [Test]
    public async Task ALeaseExpiringBetweenChecksIsRevokedByTheNextCheck()
    {
        var clock = LeaseTestSupport.Clock();
        await using var store = LeaseTestSupport.Open(new FaultInjectingFileSystem(1), clock);
        long lease = GrantALeaseThatExpiresBetweenChecks(store, clock);
        Assert.That(store.KeysWithLeases(), Has.Count.EqualTo(1), "expired at 3.2 s; the next check is at 3.5 s");

        store.Advance(clock, TimeSpan.FromMilliseconds(1));
        Assert.That(store.KeysWithLeases(), Is.Empty);
    }

    [Test]
    public async Task AKeepAliveOfAnExpiredLeaseNotYetRevokedWaitsForTheRevocationThenAnswersNotFound()
    {
        // etcd 3.4's lessor.Renew: "A expired lease might be pending for revoking or going through
        // quorum to be revoked. To be accurate, renew request must wait for the deletion to complete."
        var clock = LeaseTestSupport.Clock();
        await using var store = LeaseTestSupport.Open(new FaultInjectingFileSystem(1), clock);
        long lease = GrantALeaseThatExpiresBetweenChecks(store, clock);
        var keepAlive = store.LeaseKeepAliveAsync(lease).AsTask();
        var second = store.LeaseKeepAliveAsync(lease).AsTask();
        Assert.That(keepAlive.IsCompleted || second.IsCompleted, Is.False, "expired at 3.2 s, revoked at the 3.5 s check: the keep-alives wait for it (they neither renew it nor answer before the keys are gone)");

        store.Advance(clock, TimeSpan.FromMilliseconds(1));
        foreach (var waiting in new[] { keepAlive, second })
        {
            var refused = Assert.ThrowsAsync<MvccException>(async () => await waiting.WaitAsync(Waits.Limit))!;
            Assert.That(refused.Error, Is.EqualTo(MvccError.LeaseNotFound));
        }

        Assert.That(store.KeysWithLeases(), Is.Empty, "answered after the revocation deleted the lease's key");
        Assert.That(store.LeaseTimeToLive(lease).TtlSeconds, Is.EqualTo(-1));
    }

    [Test]
    public async Task AKeepAliveWaitingForAnExpiredLeaseEndsWithTheStoreOrItsCancellation()
    {
        var clock = LeaseTestSupport.Clock();
        var store = LeaseTestSupport.Open(new FaultInjectingFileSystem(1), clock, new LeaseOptions { RevokeExpired = false });
        long lease = store.Grant(5);
        clock.Advance(TimeSpan.FromSeconds(6));
        using var cancel = new CancellationTokenSource();
        var cancelled = store.LeaseKeepAliveAsync(lease, cancel.Token).AsTask();
        var waiting = store.LeaseKeepAliveAsync(lease).AsTask();
        Assert.That(cancelled.IsCompleted || waiting.IsCompleted, Is.False, "nothing revokes it (report-only): both wait");

        cancel.Cancel();
        Assert.That(async () => await cancelled.WaitAsync(Waits.Limit), Throws.InstanceOf<OperationCanceledException>());
        Assert.That(waiting.IsCompleted, Is.False, "cancelling one wait leaves the other");

        await store.DisposeAsync();
        Assert.That(async () => await waiting.WaitAsync(Waits.Limit), Throws.InstanceOf<ObjectDisposedException>(), "the store closed before the revocation");
    }

    [Test]
    public async Task KeepAlivesPreventExpiry()
    {
        var clock = LeaseTestSupport.Clock();
        await using var store = LeaseTestSupport.Open(new FaultInjectingFileSystem(1), clock);
        long lease = store.Grant(10);
        store.Put("k", "v", lease: lease);
        for (int i = 0; i < 10; i++)
        {
            store.Advance(clock, TimeSpan.FromSeconds(8));
            Assert.That(store.KeepAlive(lease), Is.EqualTo(10));
        }

        Assert.That(store.KeysWithLeases(), Is.EqualTo(new[] { ("k", lease) }), "80 s on a 10 s lease kept alive every 8 s");
        store.Advance(clock, TimeSpan.FromSeconds(10));
        Assert.That(store.KeysWithLeases(), Is.Empty, "10 s after the last keep-alive it expired");
    }

    [Test]
    public async Task AMassExpiryIsRevokedAtTheRateLimit()
    {
        var clock = LeaseTestSupport.Clock();
        var leaseOptions = new LeaseOptions { MaxRevokesPerSecond = 10 };
        await using var store = LeaseTestSupport.Open(new FaultInjectingFileSystem(1), clock, leaseOptions);
        long early = store.Grant(5);
        store.Put("early", "v", lease: early);
        clock.Advance(TimeSpan.FromMilliseconds(100));
        var late = new List<long>();
        for (int i = 0; i < 24; i++)
        {
            late.Add(store.Grant(5));
            store.Put($"k{i:D2}", "v", lease: late[^1]);
        }

        store.Advance(clock, TimeSpan.FromSeconds(5) - TimeSpan.FromMilliseconds(100));
        Assert.That(store.LeaseLeases().Leases, Has.Count.EqualTo(24).And.No.Member(early), "the check at 5 s revokes the lease that expired at 5 s");
        for (int round = 1; round <= 5; round++)
        {
            store.Advance(clock, Check);
            Assert.That(store.LeaseLeases().Leases, Has.Count.EqualTo(Math.Max(0, 24 - (5 * round))), $"10 per second is 5 per 500 ms check; after check {round}");
        }

        Assert.That(store.KeysWithLeases(), Is.Empty);
    }

    [Test]
    public async Task WithRevokeExpiredOffExpiredLeasesAreOnlyReportedUntilSomeoneRevokesThem()
    {
        var clock = LeaseTestSupport.Clock();
        await using var store = LeaseTestSupport.Open(new FaultInjectingFileSystem(1), clock, new LeaseOptions { RevokeExpired = false });
        long a = store.Grant(5);
        long b = store.Grant(8);
        store.Put("k", "v", lease: a);

        clock.Advance(TimeSpan.FromSeconds(4));
        Assert.That(store.TakeExpiredLeases(10), Is.Empty);
        clock.Advance(TimeSpan.FromSeconds(2));
        Assert.That(store.TakeExpiredLeases(10), Is.EqualTo(new[] { a }));
        Assert.That(store.TakeExpiredLeases(10), Is.Empty, "reported once per retry interval");
        Assert.That(store.KeysWithLeases(), Has.Count.EqualTo(1), "nothing is revoked by the store");

        clock.Advance(TimeSpan.FromSeconds(3));
        Assert.That(store.TakeExpiredLeases(10), Is.EqualTo(new[] { b, a }), "b expired at 8 s; a is reported again at 9 s (etcd's 3 s retry)");

        store.Revoke(a);
        Assert.That(store.KeysWithLeases(), Is.Empty);
        clock.Advance(TimeSpan.FromSeconds(3));
        Assert.That(store.TakeExpiredLeases(10), Is.EqualTo(new[] { b }), "a revoked lease is not reported again");
    }

    [Test]
    public async Task RefreshLeasesRestartsEveryTtlAsANewLeaderWould()
    {
        var clock = LeaseTestSupport.Clock();
        await using var store = LeaseTestSupport.Open(new FaultInjectingFileSystem(1), clock, new LeaseOptions { RevokeExpired = false });
        long a = store.Grant(5);
        long b = store.Grant(20);
        clock.Advance(TimeSpan.FromSeconds(6));
        Assert.That(store.TakeExpiredLeases(10), Is.EqualTo(new[] { a }));

        store.RefreshLeases();
        Assert.That((store.LeaseTimeToLive(a).TtlSeconds, store.LeaseTimeToLive(b).TtlSeconds), Is.EqualTo((5L, 20L)));
        Assert.That(store.TakeExpiredLeases(10), Is.Empty);
        Assert.That(store.KeepAlive(a), Is.EqualTo(5), "refreshed, it can be kept alive again");
        clock.Advance(TimeSpan.FromSeconds(5));
        Assert.That(store.TakeExpiredLeases(10), Is.EqualTo(new[] { a }));
    }

    [Test]
    public async Task ARefreshJustBeforeExpiryPostponesIt()
    {
        var clock = LeaseTestSupport.Clock();
        await using var store = LeaseTestSupport.Open(new FaultInjectingFileSystem(1), clock);
        long lease = store.Grant(5);
        store.Put("k", "v", lease: lease);

        clock.Advance(TimeSpan.FromSeconds(5) - TimeSpan.FromMilliseconds(1));
        store.RefreshLeases();
        store.Advance(clock, TimeSpan.FromSeconds(1));
        Assert.That(store.KeysWithLeases(), Has.Count.EqualTo(1), "refreshed at 4.999 s, the lease now runs to 9.999 s");
        store.Advance(clock, TimeSpan.FromSeconds(4));
        Assert.That(store.KeysWithLeases(), Has.Count.EqualTo(1), "at 9.999 s it has not run out yet");
        store.Advance(clock, TimeSpan.FromMilliseconds(1));
        Assert.That(store.KeysWithLeases(), Is.Empty, "the check at 10 s revokes it");
    }

    [Test]
    public async Task KeepAliveHeavyUseKeepsTheExpiryQueueBounded()
    {
        var clock = LeaseTestSupport.Clock();
        await using var store = LeaseTestSupport.Open(new FaultInjectingFileSystem(1), clock);
        long lease = store.Grant(60);
        for (int i = 0; i < 10_000; i++)
        {
            store.KeepAlive(lease);
        }

        Assert.That(store.LeaseQueueEntryCount, Is.LessThanOrEqualTo(2 + 1024 + 1));
    }

    /// <summary>
    /// Grants a 3 s lease at 0.2 s with key "k" on it, then moves the clock to 3.499 s, stopping at
    /// every expiry check on the way: the lease expired at 3.2 s, and the check that revokes it
    /// (every 0.5 s) is 1 ms away.
    /// </summary>
    private static long GrantALeaseThatExpiresBetweenChecks(MvccStore store, FakeTimeProvider clock)
    {
        clock.Advance(TimeSpan.FromMilliseconds(200));
        long lease = store.Grant(3);
        store.Put("k", "v", lease: lease);
        store.Advance(clock, TimeSpan.FromMilliseconds(3299));
        return lease;
    }
}
