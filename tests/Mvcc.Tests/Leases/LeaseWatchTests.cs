using EmbeddedRaft.TestSupport.IO;
using EmbeddedRaft.Mvcc.Tests.Watch;

namespace EmbeddedRaft.Mvcc.Tests.Leases;

/// <summary>
/// What watchers see of leases: a lease that expires or is revoked deletes its keys in one
/// revision, and a watcher of those keys receives exactly those deletes, together in one response,
/// and nothing for the keys the lease did not hold.
/// </summary>
public sealed class LeaseWatchTests
{
    [Test]
    public async Task WatchersSeeAnExpiredLeasesKeysDeletedTogetherAtItsTtl()
    {
        var clock = LeaseTestSupport.Clock();
        await using var store = LeaseTestSupport.Open(new FaultInjectingFileSystem(1), clock);
        long lease = store.Grant(10);
        await store.PutAsync(new PutRequest { Key = "a"u8.ToArray(), Value = "1"u8.ToArray(), Lease = lease });
        await store.PutAsync(new PutRequest { Key = "b"u8.ToArray(), Value = "1"u8.ToArray(), Lease = lease });
        await store.PutAsync(new PutRequest { Key = "c"u8.ToArray(), Value = "1"u8.ToArray() });
        long before = store.Revision;

        await using var watch = store.Watch(new WatchRequest { Key = new byte[] { 0 }, RangeEnd = new byte[] { 0 }, StartRevision = before + 1 });
        await using var responses = watch.GetAsyncEnumerator();
        store.Advance(clock, TimeSpan.FromSeconds(10));

        var response = responses.Next("the expiry's deletes");
        Assert.That(response.Events.Select(WatchTestSupport.Show), Is.EqualTo(new[] { $"delete a@{before + 1}", $"delete b@{before + 1}" }),
            "both keys of the lease, one revision, one response; c (no lease) untouched");
        Assert.That(response.Header.Revision, Is.EqualTo(before + 1));
    }

    [Test]
    public async Task WatchersSeeARevokedLeasesKeysDeletedWithTheirPreviousValues()
    {
        var clock = LeaseTestSupport.Clock();
        await using var store = LeaseTestSupport.Open(new FaultInjectingFileSystem(1), clock);
        long lease = store.Grant(60);
        await store.PutAsync(new PutRequest { Key = "lock/1"u8.ToArray(), Value = "owner"u8.ToArray(), Lease = lease });
        await store.PutAsync(new PutRequest { Key = "other"u8.ToArray(), Value = "x"u8.ToArray() });
        long before = store.Revision;

        await using var watch = store.Watch(new WatchRequest { Key = "lock/"u8.ToArray(), RangeEnd = KeyRange.PrefixEnd("lock/"u8.ToArray()), StartRevision = before + 1, PrevKv = true });
        await using var responses = watch.GetAsyncEnumerator();
        store.Revoke(lease);
        await store.PutAsync(new PutRequest { Key = "lock/2"u8.ToArray(), Value = "next"u8.ToArray() });

        var events = responses.EventsThrough(before + 2, "the revocation and the next put");
        Assert.That(events.Select(WatchTestSupport.Show), Is.EqualTo(new[] { $"delete lock/1@{before + 1}", $"put lock/2=next@{before + 2}" }));
        Assert.That(events[0].PrevKv?.Value.ToArray(), Is.EqualTo("owner"u8.ToArray()), "the delete carries the value the lease held");
    }
}
