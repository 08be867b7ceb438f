using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using Microsoft.Extensions.Time.Testing;

namespace EmbeddedRaft.Mvcc.Tests.Leases;

/// <summary>Stores on the simulated disk with a manual clock, and short ways to use leases.</summary>
internal static class LeaseTestSupport
{
    public const string Directory = "/data/mvcc";

    public static readonly DateTimeOffset Start = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public static FakeTimeProvider Clock() => new(Start);

    public static MvccStoreOptions Options(FakeTimeProvider clock, LeaseOptions? leases = null) =>
        new() { Leases = (leases ?? new LeaseOptions()) with { TimeProvider = clock } };

    public static MvccStore Open(FaultInjectingFileSystem fs, FakeTimeProvider clock, LeaseOptions? leases = null) =>
        MvccStore.Open(fs, Directory, Options(clock, leases));

    public static long Grant(this MvccStore store, long ttlSeconds, long id = 0) =>
        store.LeaseGrantAsync(ttlSeconds, id).AsTask().ResultOrFail("a lease grant").Id;

    public static LeaseRevokeResponse Revoke(this MvccStore store, long id) =>
        store.LeaseRevokeAsync(id).AsTask().ResultOrFail("a lease revoke");

    public static long KeepAlive(this MvccStore store, long id) =>
        store.LeaseKeepAliveAsync(id).AsTask().ResultOrFail("a keep-alive").TtlSeconds;

    /// <summary>
    /// Advances the clock, stopping at every expiry check on the way (every check interval after
    /// <see cref="Start"/>, where the tests open their stores), and waits after each for the
    /// revocations its check queued. FakeTimeProvider runs every timer callback due within one
    /// Advance at the end time, so one long step would run the checks late.
    /// </summary>
    public static void Advance(this MvccStore store, FakeTimeProvider clock, TimeSpan by)
    {
        long step = LeaseOptions.DefaultExpiryCheckInterval.Ticks;
        var target = clock.GetUtcNow() + by;
        while (clock.GetUtcNow() < target)
        {
            long elapsed = (clock.GetUtcNow() - Start).Ticks;
            var nextCheck = Start + TimeSpan.FromTicks(((elapsed / step) + 1) * step);
            clock.SetUtcNow(nextCheck < target ? nextCheck : target);
            store.LeaseExpiryRound.WaitOrFail("the expiry round's revocations");
        }
    }

    /// <summary>Every live key with its lease, in key order.</summary>
    public static List<(string Key, long Lease)> KeysWithLeases(this MvccStore store) =>
        [.. store.Range(new RangeRequest { Key = new byte[] { 0 }, RangeEnd = new byte[] { 0 } }).Kvs.Select(kv => (Store.StoreTestSupport.S(kv.Key), kv.Lease))];

    public static List<string> KeysOf(this MvccStore store, long lease) =>
        [.. store.LeaseTimeToLive(lease, keys: true).Keys.Select(k => Store.StoreTestSupport.S(k))];
}
