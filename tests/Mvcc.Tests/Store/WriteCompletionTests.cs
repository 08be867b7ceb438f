using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Store;

/// <summary>
/// The completions of writes are reused once their caller has taken the result: a caller never
/// sees another write's outcome, and a cancelled wait leaves the write and later ones intact;
/// writes racing with the store's disposal each complete or are refused, none is left waiting.
/// </summary>
public sealed class WriteCompletionTests
{
    [Test]
    public async Task AWriteResultTakenTwiceFailsInsteadOfShowingALaterWrite()
    {
        await using var store = OpenOn(new FaultInjectingFileSystem(1));
#pragma warning disable CA2012 // awaited twice on purpose: the second await must fail
        var first = store.PutAsync(new PutRequest { Key = B("a"), Value = B("1") });
        Assert.That((await first).Header.Revision, Is.EqualTo(2));

        // This write takes the completion the first one gave back.
        var second = await store.PutAsync(new PutRequest { Key = B("b"), Value = B("2") });
        Assert.That(second.Header.Revision, Is.EqualTo(3));
        Assert.ThrowsAsync<InvalidOperationException>(async () => await first);
#pragma warning restore CA2012
        Assert.That(S(store.Get("a").Kvs.Single().Value), Is.EqualTo("1"));
    }

    [Test]
    public async Task ACancelledWaitStillLetsTheWriteAndLaterWritesComplete()
    {
        var fs = new FaultInjectingFileSystem(2);
        await using var store = OpenOn(fs);
        using var writerInFlush = new ManualResetEventSlim();
        using var releaseWriter = new ManualResetEventSlim();
        fs.BeforeEntering = (kind, _) =>
        {
            if (kind == FaultOperationKind.Flush && !writerInFlush.IsSet)
            {
                writerInFlush.Set();
                releaseWriter.Wait();
            }
        };

        using var cancel = new CancellationTokenSource();
        var cancelled = store.PutAsync(new PutRequest { Key = B("held"), Value = B("1") }, cancellationToken: cancel.Token).AsTask();
        writerInFlush.WaitOrFail("the write's commit reaching its flush");
        await cancel.CancelAsync();
        Assert.That(() => cancelled.WaitOrFail("the cancelled wait"), Throws.InstanceOf<AggregateException>().With.InnerException.InstanceOf<TaskCanceledException>());
        releaseWriter.Set();
        fs.BeforeEntering = null;

        // The write itself was queued, so it is applied; later writes get their own results.
        var later = await Task.WhenAll(Enumerable.Range(0, 100).Select(i => store.PutAsync(new PutRequest { Key = B($"k{i}"), Value = B($"v{i}") }).AsTask()));
        Assert.That(later.Select(r => r.Header.Revision), Is.EqualTo(Enumerable.Range(3, 100).Select(r => (long)r)));
        Assert.That(S(store.Get("held").Kvs.Single().Value), Is.EqualTo("1"));
        Assert.That(store.Revision, Is.EqualTo(102));
    }

    [TestCaseSource(nameof(Seeds))]
    public async Task WritesRacingWithDisposalEachCompleteOrAreRefused(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with MVCC_SEED={seed}");
        var random = new Random(seed);
        var store = OpenOn(new FaultInjectingFileSystem(seed));
        using var start = new ManualResetEventSlim();

        // Disposed once this many writes were applied, so writes are queued and in flight at the stop.
        long disposeAtRevision = random.Next(10, 4_000);
        var writers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            start.Wait();
            var outcomes = new List<string>();
            for (int i = 0; i < 2_000; i++)
            {
                try
                {
                    await store.PutAsync(new PutRequest { Key = B($"w{w}/{i:D5}"), Value = B("v") });
                    outcomes.Add("ok");
                }
                catch (ObjectDisposedException)
                {
                    outcomes.Add("refused");
                }
            }

            return outcomes;
        })).ToArray();

        start.Set();
        SpinWait.SpinUntil(() => store.Revision >= disposeAtRevision || writers.All(w => w.IsCompleted), TimeSpan.FromMinutes(1));
        await store.DisposeAsync();

        // Every write's wait ended: applied before the stop, or refused by it.
        var all = Task.WhenAll(writers);
        all.WaitOrFail("every write racing with the disposal");
        var outcomes = (await all).SelectMany(o => o).ToList();
        Assert.That(outcomes, Has.Count.EqualTo(4 * 2_000));
        Assert.That(outcomes.Count(o => o == "ok"), Is.GreaterThanOrEqualTo(disposeAtRevision - 1), "the writes applied before the stop");
        TestContext.Out.WriteLine($"{outcomes.Count(o => o == "ok")} applied, {outcomes.Count(o => o == "refused")} refused");
    }

    private static IEnumerable<TestCaseData> Seeds() =>
        TestSeeds.Choose("MVCC_SEED", "MVCC_SOAK_SEEDS", first: 1, defaultCount: 2).Select(seed => new TestCaseData(seed).SetArgDisplayNames($"seed {seed}"));
}
