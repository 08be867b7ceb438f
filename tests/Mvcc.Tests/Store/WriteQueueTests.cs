using EmbeddedRaft.Mvcc.Store;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Store;

/// <summary>
/// The writer's lock-free request queue: every op added comes out once, each adding thread's ops
/// in the order it added them; closing refuses later adds and hands back what was not taken; and a
/// store's writes racing with its disposal each complete or are refused, none is left waiting.
/// </summary>
public sealed class WriteQueueTests
{
    [Test]
    public void OpsAddedByConcurrentThreadsComeOutOnceEachInEveryThreadsOrder()
    {
        const int Threads = 4;
        const int PerThread = 20_000;
        var queue = new WriteQueue();
        using var start = new ManualResetEventSlim();
        var adders = Enumerable.Range(0, Threads).Select(t => Task.Run(() =>
        {
            start.Wait();
            for (int i = 0; i < PerThread; i++)
            {
                Assert.That(queue.TryAdd(new WriteOp(WriteOpKind.Put, (t, i), 0)), Is.True);
            }
        })).ToArray();

        // The taker runs while the adders add, so it takes many partial stacks.
        var next = new int[Threads];
        int taken = 0;
        start.Set();
        while (taken < Threads * PerThread)
        {
            if (queue.TryTake() is not { } op)
            {
                Thread.Yield();
                continue;
            }

            Assert.That(op.Next, Is.Null, "a taken op is unlinked");
            var (thread, sequence) = ((int, int))op.Request!;
            Assert.That(sequence, Is.EqualTo(next[thread]), $"thread {thread}'s ops in the order it added them");
            next[thread]++;
            taken++;
        }

        Task.WaitAll(adders);
        Assert.That(queue.TryTake(), Is.Null);
        Assert.That(queue.IsEmpty, Is.True);
        Assert.That(next, Is.All.EqualTo(PerThread));
    }

    [Test]
    public void CloseRefusesLaterAddsAndHandsBackWhatWasNotTakenOldestFirst()
    {
        var queue = new WriteQueue();
        var ops = Enumerable.Range(0, 5).Select(i => new WriteOp(WriteOpKind.Put, i, 0)).ToArray();
        Assert.That(queue.TryAdd(ops[0]), Is.True);
        Assert.That(queue.TryAdd(ops[1]), Is.True);
        Assert.That(queue.TryAdd(ops[2]), Is.True);
        Assert.That(queue.TryTake(), Is.SameAs(ops[0]));

        // ops[1] and ops[2] are taken into the writer's list by the take above; ops[3] is still in the stack.
        Assert.That(queue.TryAdd(ops[3]), Is.True);
        var left = queue.Close();

        Assert.That(left, Is.EqualTo(new[] { ops[1], ops[2], ops[3] }));
        Assert.That(left.Select(op => op.Next), Is.All.Null);
        Assert.That(queue.TryAdd(ops[4]), Is.False);
        Assert.That(queue.TryTake(), Is.Null);
        Assert.That(queue.Close(), Is.Empty);
    }

    [Test]
    public void AnOpStillLinkedIntoTheQueueIsNotAddedAgain()
    {
        var queue = new WriteQueue();
        var first = new WriteOp(WriteOpKind.Put, 1, 0);
        var second = new WriteOp(WriteOpKind.Put, 2, 0);
        Assert.That(queue.TryAdd(first), Is.True);
        Assert.That(queue.TryAdd(second), Is.True);

        // second links to first: adding it again would make a cycle.
        Assert.Throws<InvariantViolationException>(() => queue.TryAdd(second));
        Assert.That(queue.TryTake(), Is.SameAs(first));
        Assert.That(queue.TryTake(), Is.SameAs(second));
        Assert.That(queue.TryTake(), Is.Null);
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

        // Every write's wait ended: applied before the stop, or refused by it (also those added after it).
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
