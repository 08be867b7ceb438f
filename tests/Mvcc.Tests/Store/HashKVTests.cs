using EmbeddedRaft.Mvcc.Tests.Model;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Store;

/// <summary>
/// HashKV is equal on replicas with the same history whatever their batching, durability mode and
/// physical compaction progress, and differs when the history differs.
/// </summary>
public sealed class HashKVTests
{
    private static IEnumerable<int> Seeds() => TestSeeds.Choose("MVCC_SEED", "MVCC_SOAK_SEEDS", first: 1, defaultCount: 3);

    [TestCaseSource(nameof(Seeds))]
    public async Task ReplicasWithTheSameHistoryHashEqualWhateverTheirBatchingAndCompactionProgress(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with MVCC_SEED={seed}");
        var random = new Random(seed);
        var requests = new RandomRequests(random);
        await using var synced = OpenOn(new FaultInjectingFileSystem(seed), new MvccStoreOptions { CompactionBatchLimit = 1 });

        // This replica keeps everything in one uncommitted batch and prunes nothing until it has to.
        await using var batched = OpenOn(new FaultInjectingFileSystem(seed + 1), new MvccStoreOptions { Durability = MvccDurability.NoSync, BatchInterval = MvccStoreOptions.MaxBatchInterval, CompactionBatchLimit = 1000 });
        var replicas = new[] { synced, batched };
        for (int step = 0; step < 300; step++)
        {
            if (random.Next(20) == 0 && synced.Revision > 5)
            {
                long at = synced.Revision - random.Next(5);
                if (at > synced.CompactRevision)
                {
                    // Only the first waits for the pruning; the second is hashed with it pending.
                    await synced.CompactAsync(at, physical: true);
                    await batched.CompactAsync(at, physical: false);
                }
            }
            else
            {
                var put = new PutRequest { Key = requests.Key(), Value = requests.Value() };
                foreach (var replica in replicas)
                {
                    await replica.PutAsync(put);
                }
            }

            if (step % 10 == 0)
            {
                long revision = random.Next(2) == 0 ? 0 : synced.Revision - random.Next(3);
                if (revision != 0 && revision <= synced.CompactRevision)
                {
                    continue;
                }

                var first = synced.HashKV(revision);
                var second = batched.HashKV(revision);
                Assert.That((second.Hash, second.CompactRevision, second.HashRevision, second.Header.Revision), Is.EqualTo((first.Hash, first.CompactRevision, first.HashRevision, first.Header.Revision)), $"seed {seed} step {step}");
            }
        }
    }

    [Test]
    public void ADifferentHistoryHashesDifferentlyAndCompactedRevisionsAreRefused()
    {
        using var one = OpenOn(new FaultInjectingFileSystem(1));
        using var other = OpenOn(new FaultInjectingFileSystem(2));
        one.Put("a", "1");
        other.Put("a", "2");
        Assert.That(one.HashKV().Hash, Is.Not.EqualTo(other.HashKV().Hash));
        one.Put("b", "1");
        one.Compact(2);
        Assert.Throws<RevisionCompactedException>(() => one.HashKV(2));
        Assert.Throws<FutureRevisionException>(() => one.HashKV(4));
        Assert.That(one.HashKV().HashRevision, Is.EqualTo(3));
    }
}
