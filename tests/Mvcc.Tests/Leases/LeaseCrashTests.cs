using EmbeddedRaft.Storage;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Leases;

/// <summary>
/// A crash at every write and flush of a workload of lease grants, puts attaching keys, moves,
/// deletes and revocations, each carrying consistent index i: after the simulated machine restarts
/// (unflushed writes kept, dropped or torn), the reopened store's leases and keys equal the model
/// after exactly the writes its consistent index names — every acknowledged one in synced mode —
/// so a lease and the keys its revocation deleted are never split by a crash. Then revoking every
/// lease left must delete exactly the keys attached to it.
/// </summary>
public sealed class LeaseCrashTests
{
    private static IEnumerable<int> Seeds() => TestSeeds.Choose("LEASE_SEED", "LEASE_SOAK_SEEDS", first: 1, defaultCount: 2);

    [TestCaseSource(nameof(Seeds))]
    public async Task SyncedLeaseWritesSurviveACrashAtEveryWriteAndFlush(int seed) =>
        await CrashEverywhereAsync(seed, MvccDurability.Synced, syncEvery: 0);

    [TestCaseSource(nameof(Seeds))]
    public async Task NoSyncLeaseBatchesSurviveACrashAtEveryWriteAndFlushUpToTheLastSync(int seed) =>
        await CrashEverywhereAsync(seed, MvccDurability.NoSync, syncEvery: 5);

    private static async Task CrashEverywhereAsync(int seed, MvccDurability durability, int syncEvery)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with LEASE_SEED={seed}");
        var clock = LeaseTestSupport.Clock();
        var options = LeaseTestSupport.Options(clock) with { Durability = durability, BatchLimit = 3, BatchInterval = MvccStoreOptions.MaxBatchInterval };

        // The whole workload once: the model after each write, and how many file-system operations it takes.
        var counting = new FaultInjectingFileSystem(seed);
        List<string> after;
        await using (var store = MvccStore.Open(counting, LeaseTestSupport.Directory, options))
        {
            (after, _, _) = await WriteAsync(store, seed, syncEvery);
        }

        Assert.That(after, Has.Count.EqualTo(Operations + 1), "the workload runs to the end without a crash");
        long total = counting.OperationCount;
        TestContext.Out.WriteLine($"{Operations} writes take {total} file-system operations; crashing after each");
        var durableSeen = new HashSet<int>();
        for (long crashAt = 1; crashAt <= total; crashAt++)
        {
            string where = $"seed {seed}, {durability}, crash after operation {crashAt} of {total}";
            var fs = new FaultInjectingFileSystem(seed * 7919 + (int)crashAt) { CrashAfterOperation = crashAt };
            int acknowledged = 0;
            int synced = 0;
            try
            {
                var store = MvccStore.Open(fs, LeaseTestSupport.Directory, options);
                (_, acknowledged, synced) = await WriteAsync(store, seed, syncEvery);
                DisposeAfterCrash(store);
            }
            catch (Exception e) when (e is SimulatedCrashException or IOException)
            {
                // The crash hit while creating the store.
            }

            fs.Restart();
            await using var reopened = MvccStore.Open(fs, LeaseTestSupport.Directory, options);
            int durable = (int)reopened.ConsistentIndex;
            durableSeen.Add(durable);
            int atLeast = durability == MvccDurability.Synced ? acknowledged : synced;
            Assert.That(durable, Is.InRange(atLeast, Math.Min(acknowledged + 1, Operations)), $"{where}: writes durable ({acknowledged} acknowledged, {synced} synced)");
            Assert.That(LeaseModel.Describe(reopened, withRemaining: false), Is.EqualTo(after[durable]), $"{where}: state after write {durable}");

            // The attachments the store rebuilt are the ones revocation acts on.
            foreach (long lease in reopened.LeaseLeases().Leases)
            {
                var attached = reopened.KeysOf(lease);
                await reopened.LeaseRevokeAsync(lease);
                Assert.That(attached.Where(k => reopened.Get(k).Count != 0), Is.Empty, $"{where}: revoking lease {lease} deletes its keys");
            }

            Assert.That(reopened.KeysWithLeases().Where(k => k.Lease != 0), Is.Empty, $"{where}: no key is left on a revoked lease");
        }

        Assert.That(durableSeen, Has.Count.GreaterThan(3), "crashes land all along the workload");
    }

    private const int Operations = 30;

    /// <summary>
    /// Runs the seeded workload (every write valid, the i-th with consistent index i) until it ends
    /// or the disk crashes. Returns the model's description after each write (index 0: before any),
    /// how many writes were acknowledged, and how many were synced for sure.
    /// </summary>
    private static async Task<(List<string> After, int Acknowledged, int Synced)> WriteAsync(MvccStore store, int seed, int syncEvery)
    {
        var random = new Random(seed);
        var model = new LeaseModel(LeaseOptions.DefaultMinTtlSeconds);
        var after = new List<string> { model.Describe(withRemaining: false) };
        int synced = 0;
        long nextId = 1;
        try
        {
            for (int i = 1; i <= Operations; i++)
            {
                ulong index = (ulong)i;
                string key = $"k{random.Next(8)}";
                int choice = model.Leases.Count == 0 ? 0 : random.Next(10);
                switch (choice)
                {
                    case 0 or 1:
                        long id = nextId++;
                        long ttl = 30 + random.Next(30);
                        await store.LeaseGrantAsync(ttl, id, index);
                        model.Grant(id, ttl, out _);
                        break;
                    case 2:
                        long revoked = model.Leases.Keys.ElementAt(random.Next(model.Leases.Count));
                        await store.LeaseRevokeAsync(revoked, index);
                        model.Revoke(revoked);
                        break;
                    case 3:
                        await store.DeleteRangeAsync(new DeleteRangeRequest { Key = B(key) }, index);
                        model.Delete(key);
                        break;
                    case 4:
                        await store.PutAsync(new PutRequest { Key = B(key), Value = B($"v{i}") }, index);
                        model.Put(key, $"v{i}", 0);
                        break;
                    default:
                        long lease = model.Leases.Keys.ElementAt(random.Next(model.Leases.Count));
                        await store.PutAsync(new PutRequest { Key = B(key), Value = B($"v{i}"), Lease = lease }, index);
                        model.Put(key, $"v{i}", lease);
                        break;
                }

                after.Add(model.Describe(withRemaining: false));
                if (syncEvery > 0 && i % syncEvery == 0)
                {
                    await store.SyncAsync();
                    synced = i;
                }
            }
        }
        catch (Exception e) when (e is SimulatedCrashException or IOException or StorageFaultedException)
        {
        }

        return (after, after.Count - 1, synced);
    }

    private static void DisposeAfterCrash(MvccStore store)
    {
        try
        {
            store.Dispose();
        }
        catch (Exception e) when (e is SimulatedCrashException or IOException)
        {
            // The disk is gone; what matters is what the restart finds.
        }
    }
}
