using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Images.ImageTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Leases;

/// <summary>
/// The lessor as a replicated store drives it: only a primary lessor (the leader's) reports expired
/// leases; promotion restarts every TTL first, so an election never expires leases en masse;
/// keep-alives and expiry revocations are applied from the log, the same on every member whatever
/// its clock says.
/// </summary>
public sealed class ReplicatedLeaseApplyTests
{
    [Test]
    public async Task ADemotedLessorReportsNothingAndPromotionRestartsEveryTtlFirst()
    {
        var clock = LeaseTestSupport.Clock();
        await using var store = MvccStore.Open(new FaultInjectingFileSystem(1), TargetDirectory, Options(clock));
        store.DemoteLessor();
        long lease = (await store.LeaseGrantAsync(10, 7, 1)).Id;
        clock.Advance(TimeSpan.FromSeconds(30));
        Assert.That(store.TakeExpiredLeases(10), Is.Empty, "a secondary lessor never reports, however long ago the TTL ran out");

        store.PromoteLessor();
        Assert.That(store.IsLessorPrimary, Is.True);
        Assert.That(store.TakeExpiredLeases(10), Is.Empty, "the new primary first gave every lease its full TTL again");
        clock.Advance(TimeSpan.FromSeconds(9));
        Assert.That(store.TakeExpiredLeases(10), Is.Empty, "9 s into the restarted 10 s TTL");
        clock.Advance(TimeSpan.FromSeconds(2));
        Assert.That(store.TakeExpiredLeases(10), Is.EqualTo(new[] { lease }), "once the restarted TTL ran out");

        store.DemoteLessor();
        clock.Advance(TimeSpan.FromMinutes(5));
        Assert.That(store.TakeExpiredLeases(10), Is.Empty, "demoted again: nothing more is reported");
    }

    [Test]
    public async Task AnAppliedKeepAliveRenewsALeaseWhateverThisMembersClockSays()
    {
        var clock = LeaseTestSupport.Clock();
        await using var store = MvccStore.Open(new FaultInjectingFileSystem(2), TargetDirectory, Options(clock));
        long lease = (await store.LeaseGrantAsync(10, 7, 1)).Id;
        clock.Advance(TimeSpan.FromSeconds(15));
        var local = store.LeaseKeepAliveAsync(lease).AsTask();
        Assert.That(local.IsCompleted, Is.False, "a local keep-alive of a lease whose TTL ran out waits for its revocation");

        // From the log: the leader had not revoked it before this entry, so it is alive.
        var renewed = await store.ApplyLeaseKeepAliveAsync(lease, 2);
        Assert.That(renewed.TtlSeconds, Is.EqualTo(10));
        Assert.That((await local.WaitAsync(Waits.Limit)).TtlSeconds, Is.EqualTo(10), "renewed meanwhile, the waiting keep-alive renews it too");
        Assert.That(store.ConsistentIndex, Is.EqualTo(2UL));
        Assert.That(store.LeaseTimeToLive(lease).TtlSeconds, Is.EqualTo(10), "its TTL restarted on this member's clock");

        var missing = Assert.ThrowsAsync<MvccException>(async () => await store.ApplyLeaseKeepAliveAsync(99, 3))!;
        Assert.That(missing.Error, Is.EqualTo(MvccError.LeaseNotFound));
        Assert.That(store.ConsistentIndex, Is.EqualTo(2UL), "a refused keep-alive writes nothing");
    }

    [Test]
    public async Task AKeepAliveWaitingForAnExpiredLeaseIsToldWhenTheLessorIsDemoted()
    {
        // etcd's Renew returns ErrNotPrimary when the lessor is demoted while it waits: the
        // revocation may now never come from this member, and the client retries at the leader.
        var clock = LeaseTestSupport.Clock();
        await using var store = MvccStore.Open(new FaultInjectingFileSystem(3), TargetDirectory, Options(clock));
        long lease = (await store.LeaseGrantAsync(10, 7, 1)).Id;
        clock.Advance(TimeSpan.FromSeconds(11));
        var waiting = store.LeaseKeepAliveAsync(lease).AsTask();
        Assert.That(waiting.IsCompleted, Is.False);

        store.DemoteLessor();
        var refused = Assert.ThrowsAsync<MvccException>(async () => await waiting.WaitAsync(Waits.Limit))!;
        Assert.That(refused.Error, Is.EqualTo(MvccError.NotLeader));
        Assert.That(store.LeaseTimeToLive(lease).GrantedTtlSeconds, Is.EqualTo(10), "not revoked: only the wait ended");
    }

    [Test]
    public async Task AnAppliedExpiryRevocationRevokesWhateverTheClockSaysAndOnlyOnce()
    {
        var clock = LeaseTestSupport.Clock();
        await using var store = MvccStore.Open(new FaultInjectingFileSystem(3), TargetDirectory, Options(clock));
        long lease = (await store.LeaseGrantAsync(100, 7, 1)).Id;
        await store.PutAsync(new PutRequest { Key = B("a"), Value = B("1"), Lease = lease }, 2);
        await store.PutAsync(new PutRequest { Key = B("b"), Value = B("2"), Lease = lease }, 3);
        long before = store.Revision;

        // Not expired here: the leader decided, and every member applies the same.
        var revoked = await store.ApplyExpiredLeaseRevokeAsync(lease, 4);
        Assert.That(revoked.Header.Revision, Is.EqualTo(before + 1), "both keys deleted in one revision");
        Assert.That(store.Range(new RangeRequest { Key = B("a"), RangeEnd = B("c") }).Kvs, Is.Empty);
        Assert.That(store.LeaseLeases().Leases, Is.Empty);

        // A second revocation of the same lease (proposed again after a leader change) does nothing.
        var again = await store.ApplyExpiredLeaseRevokeAsync(lease, 5);
        Assert.That(again.Header.Revision, Is.EqualTo(before + 1), "no new revision");
        Assert.That(store.Revision, Is.EqualTo(before + 1));
        Assert.That(store.ConsistentIndex, Is.EqualTo(5UL), "the entry is applied all the same");
    }

    [Test]
    public async Task AnExpiryRevocationProposedBeforeAnAppliedKeepAliveDoesNothingEvenAcrossARestart()
    {
        var clock = LeaseTestSupport.Clock();
        var disk = new FaultInjectingFileSystem(4);
        long lease;
        long renewedAt;
        await using (var leader = MvccStore.Open(disk, TargetDirectory, Options(clock)))
        {
            lease = (await leader.LeaseGrantAsync(10, 7, 1)).Id;
            await leader.PutAsync(new PutRequest { Key = B("a"), Value = B("1"), Lease = lease }, 2);
            clock.Advance(TimeSpan.FromSeconds(11));

            // The leader finds the lease expired and proposes its revocation; before that entry, the
            // log holds a keep-alive, which renews the lease and answers its full TTL.
            var expired = leader.TakeExpiredLeasesWithRenewals(10);
            Assert.That(expired, Is.EqualTo(new[] { (lease, 0L) }));
            renewedAt = expired[0].RenewedAtIndex;
            Assert.That((await leader.ApplyLeaseKeepAliveAsync(lease, 3)).TtlSeconds, Is.EqualTo(10));
        }

        // A member that restarts between the keep-alive and the expiry decides from the stored lease alone.
        await using var store = MvccStore.Open(disk, TargetDirectory, Options(clock));
        long before = store.Revision;
        await store.ApplyExpiredLeaseRevokeAsync(lease, 4, renewedAt);
        Assert.That(store.Revision, Is.EqualTo(before), "renewed after the leader decided: nothing revoked");
        Assert.That(store.Range(new RangeRequest { Key = B("a") }).Kvs, Has.Count.EqualTo(1), "the key outlives its promised TTL no less");
        Assert.That(store.LeaseLeases().Leases, Has.Count.EqualTo(1));
        Assert.That(store.ConsistentIndex, Is.EqualTo(4UL), "the entry is applied all the same");

        // An expiry decided after that keep-alive revokes.
        await store.ApplyExpiredLeaseRevokeAsync(lease, 5, 3);
        Assert.That(store.Range(new RangeRequest { Key = B("a") }).Kvs, Is.Empty);
        Assert.That(store.LeaseLeases().Leases, Is.Empty);
    }
}
