using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Store;

/// <summary>
/// <see cref="MvccStore.RangeSinglesValidated"/> (the single-key reads a read-index round released,
/// read together, in slices of <see cref="MvccStore.SingleReadsPerSlice"/>) answers every request as <see cref="MvccStore.RangeValidated"/> does alone: the
/// same key-values and counts, the same header revision, the same errors (future and compacted
/// revisions) per request, whatever the mix of keys (present, deleted, absent, rewritten),
/// revisions, count-only, keys-only and revision filters.
/// </summary>
public sealed class BatchedSingleReadTests
{
    private static IEnumerable<int> Seeds() => TestSeeds.Choose("MVCC_SEED", "MVCC_SOAK_SEEDS", first: 1, defaultCount: 3);

    [TestCaseSource(nameof(Seeds))]
    public void ReadsTogetherAnswerAsEachReadAlone(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}");
        var random = new Random(seed);
        using var store = OpenOn(new FaultInjectingFileSystem(seed));
        const int Keys = 1_500;
        for (int step = 0; step < 4_000; step++)
        {
            string key = $"key/{random.Next(Keys):D5}";
            if (random.Next(10) == 0)
            {
                store.Delete(key);
            }
            else
            {
                store.Put(key, new string((char)('a' + random.Next(26)), random.Next(0, 600)));
            }

            if (step == 2_000)
            {
                store.Compact(store.Get("none").Header.Revision / 2);
            }
        }

        long current = store.Get("none").Header.Revision;
        long compacted = current / 2;
        for (int round = 0; round < 40; round++)
        {
            int n = random.Next(1, (3 * MvccStore.SingleReadsPerSlice) + 10);
            var requests = new RangeRequest[n];
            for (int i = 0; i < n; i++)
            {
                requests[i] = new RangeRequest
                {
                    Key = B($"key/{random.Next(Keys + 100):D5}"),
                    Revision = random.Next(8) switch { 0 => current + random.Next(1, 3), 1 => random.Next(1, (int)compacted), 2 => random.Next((int)compacted, (int)current + 1), _ => 0 },
                    CountOnly = random.Next(8) == 0,
                    KeysOnly = random.Next(8) == 0,
                    MinModRevision = random.Next(10) == 0 ? random.Next(1, (int)current) : 0,
                    MaxModRevision = random.Next(10) == 0 ? random.Next(1, (int)current) : 0,
                };
            }

            var responses = new RangeResponse?[n];
            var errors = new Exception?[n];
            store.RangeSinglesValidated(requests, responses, errors);
            for (int i = 0; i < n; i++)
            {
                string what = $"request {i} of {n} in round {round}";
                RangeResponse? alone = null;
                Exception? aloneError = null;
                try
                {
                    alone = store.RangeValidated(requests[i]);
                }
                catch (Exception e)
                {
                    aloneError = e;
                }

                if (aloneError is not null)
                {
                    Assert.That(errors[i]?.GetType(), Is.EqualTo(aloneError.GetType()), what);
                    Assert.That(errors[i]!.Message, Is.EqualTo(aloneError.Message), what);
                    Assert.That(responses[i], Is.Null, what);
                    continue;
                }

                Assert.That(errors[i], Is.Null, what);
                var together = responses[i]!;
                Assert.That((together.Count, together.More, together.Header.Revision), Is.EqualTo((alone!.Count, alone.More, alone.Header.Revision)), what);
                Assert.That(together.Kvs.Select(Describe), Is.EqualTo(alone.Kvs.Select(Describe)), what);
            }
        }
    }

    [Test]
    public void ReadsTogetherOfADisposedStoreEachGetTheError()
    {
        var store = OpenOn(new FaultInjectingFileSystem(5));
        store.Put("a", "1");
        store.Dispose();
        var responses = new RangeResponse?[2];
        var errors = new Exception?[2];
        store.RangeSinglesValidated([new RangeRequest { Key = B("a") }, new RangeRequest { Key = B("b") }], responses, errors);
        Assert.That(errors.Select(e => e?.GetType()), Is.EqualTo(new[] { typeof(ObjectDisposedException), typeof(ObjectDisposedException) }));
        Assert.That(responses, Is.EqualTo(new RangeResponse?[2]));
    }

    private static string Describe(KeyValue kv) =>
        $"{S(kv.Key)}={S(kv.Value)} c{kv.CreateRevision} m{kv.ModRevision} v{kv.Version} l{kv.Lease}";
}
