using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Mvcc.Tests.Model;

/// <summary>
/// The store against <see cref="ReferenceModel"/>: random puts, deletes, ranges (limits, prefixes,
/// sorting, filters, past, compacted and future revisions), transactions (nested, compares over
/// ranges) and compactions, every response compared field by field, and the store closed and
/// reopened at random points. Each seed also runs with small batches, no-sync batching or a tiny
/// compaction step, so batch boundaries and compaction steps fall everywhere.
/// </summary>
public sealed class DifferentialTests
{
    private const int OperationsPerSeed = 2_000;

    private static IEnumerable<int> Seeds() => TestSeeds.Choose("MVCC_SEED", "MVCC_SOAK_SEEDS", first: 1, defaultCount: 10);

    [TestCaseSource(nameof(Seeds))]
    public async Task TheStoreAnswersEveryRequestAsTheReferenceModel(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with MVCC_SEED={seed}");
        var random = new Random(seed);
        var fs = new FaultInjectingFileSystem(seed);
        var options = (seed % 4) switch
        {
            0 => new MvccStoreOptions { MaxTxnOps = 6 },
            1 => new MvccStoreOptions { BatchLimit = 3, CompactionBatchLimit = 2 },
            2 => new MvccStoreOptions { Durability = MvccDurability.NoSync, BatchLimit = 7, CompactionBatchLimit = 5 },
            _ => new MvccStoreOptions { Durability = MvccDurability.NoSync, BatchInterval = TimeSpan.FromMinutes(1), CompactionBatchLimit = 1 },
        };
        var model = new ReferenceModel(options.MaxTxnOps);
        var requests = new RandomRequests(random);
        var store = MvccStore.Open(fs, "/db", options);

        // The leases RandomRequests attaches keys to (a put naming an unknown lease is refused, as
        // etcd does; the lease tests cover that): granted for good before the run (no revision).
        for (long lease = 1; lease <= 3; lease++)
        {
            await store.LeaseGrantAsync(LeaseOptions.MaxTtlSeconds, lease);
        }

        try
        {
            for (int step = 0; step < OperationsPerSeed; step++)
            {
                int dice = random.Next(100);
                string what;
                object? expected;
                object? actual;
                if (dice < 30)
                {
                    var put = requests.Put();
                    what = "put";
                    expected = Try(() => model.Put(put));
                    actual = await TryAsync(() => store.PutAsync(put).AsTask());
                }
                else if (dice < 40)
                {
                    var delete = requests.Delete();
                    what = "delete";
                    expected = Try(() => model.DeleteRange(delete));
                    actual = await TryAsync(() => store.DeleteRangeAsync(delete).AsTask());
                }
                else if (dice < 70)
                {
                    var range = requests.RangeRequest(model.Revision, model.CompactRevision);
                    what = $"range {ReferenceModel.K(range.Key)}..{ReferenceModel.K(range.RangeEnd)} rev={range.Revision} limit={range.Limit} sort={range.SortOrder}/{range.SortTarget} keysOnly={range.KeysOnly} countOnly={range.CountOnly} mod=[{range.MinModRevision},{range.MaxModRevision}] create=[{range.MinCreateRevision},{range.MaxCreateRevision}]";
                    expected = Try(() => model.Range(range));
                    actual = Try(() => store.Range(range));
                }
                else if (dice < 94)
                {
                    var txn = requests.Txn(model.Revision, model.CompactRevision);
                    what = "txn";
                    actual = await TryAsync(() => store.TxnAsync(txn).AsTask());
                    if (ReferenceModel.MayHaveDuplicateKeys(txn) && actual is MvccException { Error: MvccError.DuplicateKey })
                    {
                        // The exact duplicate rule is etcd's (and pinned by TxnTests and the etcd replay);
                        // here only its consequence is checked: a refused txn changed nothing.
                        expected = actual;
                    }
                    else
                    {
                        expected = Try(() => model.Txn(txn));
                    }
                }
                else if (dice < 97)
                {
                    long revision = random.Next(3) == 0 ? model.CompactRevision + random.Next(-1, 2) : model.Revision - random.Next(0, 15);
                    revision = Math.Max(0, revision);
                    bool physical = random.Next(2) == 0;
                    what = $"compact {revision} physical={physical}";
                    expected = Try(() => model.Compact(revision));
                    actual = await TryAsync(() => store.CompactAsync(revision, physical).AsTask());
                }
                else
                {
                    what = "reopen";
                    await store.DisposeAsync();
                    store = MvccStore.Open(fs, "/db", options);
                    expected = model.Revision;
                    actual = store.Revision;
                    Assert.That(store.CompactRevision, Is.EqualTo(model.CompactRevision), $"seed {seed} step {step}: compact revision after reopen");
                }

                string expectedText = ResponseComparer.Show(expected);
                string actualText = ResponseComparer.Show(actual);
                Assert.That(actualText, Is.EqualTo(expectedText), $"seed {seed} step {step} ({what}); replay with MVCC_SEED={seed}");
                Assert.That(store.Revision, Is.EqualTo(model.Revision), $"seed {seed} step {step} ({what}): revision");
            }

            // Everything, at every revision still readable, one last time.
            for (long at = Math.Max(1, model.CompactRevision); at <= model.Revision; at++)
            {
                var all = new RangeRequest { Key = new byte[] { 0 }, RangeEnd = KeyRange.AllKeysFrom(), Revision = at };
                Assert.That(ResponseComparer.Show(store.Range(all)), Is.EqualTo(ResponseComparer.Show(model.Range(all))), $"seed {seed}: everything at revision {at}");
            }
        }
        finally
        {
            await store.DisposeAsync();
        }
    }

    private static object? Try(Func<object?> action)
    {
        try
        {
            return action();
        }
        catch (MvccException e)
        {
            return e;
        }
    }

    private static async Task<object?> TryAsync<T>(Func<Task<T>> action)
    {
        try
        {
            return await action();
        }
        catch (MvccException e)
        {
            return e;
        }
    }
}
