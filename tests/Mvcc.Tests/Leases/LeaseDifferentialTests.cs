using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Leases;

/// <summary>
/// Random lease workloads — grants (chosen and automatic ids, TTLs below the minimum, ids in use),
/// revokes, keep-alives (of live, expired and unknown leases), puts attaching, moving and detaching
/// keys (alone and in transactions, with unknown leases too), deletes, clock advances that expire
/// leases, and restarts — run against the store and <see cref="LeaseModel"/>; after every step the
/// keys, their leases, every lease's TTLs and keys, the revision and every refusal must agree.
/// Seeds: LEASE_SEED=N replays one, LEASE_SOAK_SEEDS=N runs N.
/// </summary>
public sealed class LeaseDifferentialTests
{
    private const long MinTtlSeconds = 2;

    private static IEnumerable<int> Seeds() => TestSeeds.Choose("LEASE_SEED", "LEASE_SOAK_SEEDS", first: 1, defaultCount: 12);

    [TestCaseSource(nameof(Seeds))]
    public async Task TheStoreMatchesTheModelOverRandomLeaseOperations(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with LEASE_SEED={seed}");
        var random = new Random(seed);
        var clock = LeaseTestSupport.Clock();
        var fs = new FaultInjectingFileSystem(seed);
        var leaseOptions = new LeaseOptions { MinTtlSeconds = MinTtlSeconds, MaxRevokesPerSecond = LeaseOptions.MaxMaxRevokesPerSecond };
        var options = new MvccStoreOptions { Leases = leaseOptions with { TimeProvider = clock }, Durability = random.Next(2) == 0 ? MvccDurability.Synced : MvccDurability.NoSync };
        var model = new LeaseModel(MinTtlSeconds);
        var store = MvccStore.Open(fs, LeaseTestSupport.Directory, options);
        int expired = 0;
        try
        {
            for (int step = 0; step < 400; step++)
            {
                int leasesBefore = model.Leases.Count;
                string what = await StepAsync(random, model, store, clock);
                if (what.StartsWith("advance", StringComparison.Ordinal))
                {
                    expired += leasesBefore - model.Leases.Count;
                }

                if (what == "restart")
                {
                    // Restart at a check boundary, so the reopened store's checks stay where the model's are.
                    long toBoundary = (LeaseModel.CheckIntervalMs - (model.NowMs % LeaseModel.CheckIntervalMs)) % LeaseModel.CheckIntervalMs;
                    store.Advance(clock, TimeSpan.FromMilliseconds(toBoundary));
                    model.Advance(toBoundary);
                    await store.DisposeAsync();
                    store = MvccStore.Open(fs, LeaseTestSupport.Directory, options);
                    model.Restart();
                }

                Assert.That(LeaseModel.Describe(store), Is.EqualTo(model.Describe()), $"seed {seed}, step {step} ({what}) at {model.NowMs} ms");
            }
        }
        finally
        {
            await store.DisposeAsync();
        }

        TestContext.Out.WriteLine($"{expired} leases expired; {model.Leases.Count} left; revision {model.Revision}");
        Assert.That(expired, Is.Positive, "the run expires leases");
    }

    private static async Task<string> StepAsync(Random random, LeaseModel model, MvccStore store, Microsoft.Extensions.Time.Testing.FakeTimeProvider clock)
    {
        long AnyLease() => random.Next(10) switch
        {
            < 7 when model.Leases.Count > 0 => model.Leases.Keys.ElementAt(random.Next(model.Leases.Count)),
            < 9 => random.Next(1, 13),
            _ => 0,
        };

        string AnyKey() => $"k{random.Next(10)}";

        int choice = random.Next(100);
        switch (choice)
        {
            case < 15:
            {
                long id = random.Next(2) == 0 ? 0 : random.Next(1, 13);
                long ttl = random.Next(20) == 0 ? LeaseOptions.MaxTtlSeconds + 1 : random.Next(0, 11);
                var (response, error) = await Try(() => store.LeaseGrantAsync(ttl, id).AsTask());
                long granted = id != 0 ? id : response?.Id ?? 0;
                var expected = model.Grant(granted, ttl, out long grantedTtl);
                Assert.That(error, Is.EqualTo(expected), $"grant {id} ttl {ttl}");
                if (response is not null)
                {
                    Assert.That(response.TtlSeconds, Is.EqualTo(grantedTtl));
                }

                return $"grant {id} ttl {ttl}";
            }

            case < 23:
            {
                long id = AnyLease();
                var (_, error) = await Try(() => store.LeaseRevokeAsync(id).AsTask());
                Assert.That(error, Is.EqualTo(model.Revoke(id)), $"revoke {id}");
                return $"revoke {id}";
            }

            case < 35:
            {
                long id = AnyLease();
                var keepAlive = Try(() => store.LeaseKeepAliveAsync(id).AsTask());
                if (model.AwaitsRevocation(id))
                {
                    // As etcd: the keep-alive of an expired lease waits for its revocation, then answers not found.
                    Assert.That(keepAlive.IsCompleted, Is.False, $"keep-alive {id} of an expired lease waits for its revocation");
                    long toCheck = LeaseModel.CheckIntervalMs - (model.NowMs % LeaseModel.CheckIntervalMs);
                    store.Advance(clock, TimeSpan.FromMilliseconds(toCheck));
                    model.Advance(toCheck);
                    Assert.That(model.Leases.ContainsKey(id), Is.False, "the model revoked it at the check");
                    var (_, afterRevocation) = keepAlive.ResultOrFail("the keep-alive of an expired lease, after its revocation");
                    Assert.That(afterRevocation, Is.EqualTo(MvccError.LeaseNotFound), $"keep-alive {id} after the revocation");
                    return $"advance {toCheck} ms to the check revoking lease {id}, which a keep-alive waited for";
                }

                var (response, error) = await keepAlive;
                Assert.That(error, Is.EqualTo(model.KeepAlive(id)), $"keep-alive {id}");
                if (response is not null)
                {
                    Assert.That(response.TtlSeconds, Is.EqualTo(model.Leases[id].TtlSeconds));
                }

                return $"keep-alive {id}";
            }

            case < 62:
            {
                string key = AnyKey();
                long lease = random.Next(3) == 0 ? 0 : AnyLease();
                string value = $"v{random.Next(1000)}";
                var (_, error) = await Try(() => store.PutAsync(new PutRequest { Key = B(key), Value = B(value), Lease = lease }).AsTask());
                Assert.That(error, Is.EqualTo(model.Put(key, value, lease)), $"put {key} lease {lease}");
                return $"put {key} lease {lease}";
            }

            case < 67:
            {
                string key = AnyKey();
                string value = $"v{random.Next(1000)}";
                var (_, error) = await Try(() => store.PutAsync(new PutRequest { Key = B(key), Value = B(value), IgnoreLease = true }).AsTask());
                Assert.That(error, Is.EqualTo(model.Put(key, value, 0, ignoreLease: true)), $"put {key} keeping its lease");
                return $"put {key} keeping its lease";
            }

            case < 72:
            {
                var puts = new List<(string Key, string Value, long Lease)>();
                foreach (string key in new[] { AnyKey(), AnyKey() }.Distinct())
                {
                    puts.Add((key, $"t{random.Next(1000)}", AnyLease()));
                }

                var txn = new TxnRequest { Success = [.. puts.Select(p => RequestOp.Put(new PutRequest { Key = B(p.Key), Value = B(p.Value), Lease = p.Lease }))] };
                var (_, error) = await Try(() => store.TxnAsync(txn).AsTask());
                Assert.That(error, Is.EqualTo(model.PutAll(puts)), "txn of puts");
                return $"txn {string.Join(",", puts)}";
            }

            case < 80:
            {
                string key = AnyKey();
                await store.DeleteRangeAsync(new DeleteRangeRequest { Key = B(key) });
                model.Delete(key);
                return $"delete {key}";
            }

            case < 98:
            {
                long ms = random.Next(4) == 0 ? random.Next(1, 500) : random.Next(500, 6000);
                store.Advance(clock, TimeSpan.FromMilliseconds(ms));
                model.Advance(ms);
                return $"advance {ms} ms";
            }

            default:
                return "restart";
        }
    }

    private static async Task<(T? Response, MvccError? Error)> Try<T>(Func<Task<T>> call)
        where T : class
    {
        try
        {
            return (await call(), null);
        }
        catch (MvccException e)
        {
            return (null, e.Error);
        }
    }
}
