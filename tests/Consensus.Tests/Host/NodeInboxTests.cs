using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>
/// The queue in front of each of a node's sequential consumers: whatever any number of threads post
/// reaches the one consumer, in each poster's order, and a consumer that waits is always woken —
/// a lost wake-up would park a node's loop or pipeline for good while the posts pile up.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public class NodeInboxTests
{
    [Test]
    public async Task EveryPostFromManyThreadsReachesTheConsumerInEachPostersOrder()
    {
        const int Posters = 6;
        const int PerPoster = 100_000;
        var inbox = new NodeInbox<(int Poster, int Sequence)>();
        var next = new int[Posters];
        var consumer = Task.Run(async () =>
        {
            long taken = 0;
            long wakeUps = 0;
            while (taken < Posters * PerPoster)
            {
                var (items, _, closed) = await inbox.TakeAsync();
                Assert.That(closed, Is.False);
                wakeUps++;
                foreach (var (poster, sequence) in items)
                {
                    Assert.That(sequence, Is.EqualTo(next[poster]), $"poster {poster}'s posts in order");
                    next[poster]++;
                }

                taken += items.Count;
            }

            return wakeUps;
        });

        // Posters alternate bursts with awaits, so the consumer both finds items waiting and waits for them.
        var posting = Enumerable.Range(0, Posters).Select(p => Task.Run(async () =>
        {
            for (var i = 0; i < PerPoster; i++)
            {
                Assert.That(inbox.TryPost((p, i)), Is.True);
                if (i % (64 + p) == 0)
                {
                    await Task.Yield();
                }
            }
        })).ToArray();

        await Task.WhenAll(posting).WaitAsync(Waits.Limit);
        var wakeUps = await consumer.WaitAsync(Waits.Limit);
        TestContext.Out.WriteLine($"{Posters * PerPoster:N0} posts taken in {wakeUps:N0} takes");
        Assert.That(next, Is.All.EqualTo(PerPoster), "every post taken once");
    }

    [Test]
    public async Task AWaitingConsumerIsWokenByEachKindOfPostAndByTheClose()
    {
        var inbox = new NodeInbox<string>();
        for (var round = 0; round < 1_000; round++)
        {
            var take = inbox.TakeAsync();
            Assert.That(take.IsCompleted, Is.False, "nothing queued: the consumer waits");
            if (round % 2 == 0)
            {
                inbox.TryPost($"item {round}");
                var (items, ticks, _) = await take.AsTask().WaitAsync(Waits.Limit);
                Assert.That((items.Single(), ticks), Is.EqualTo(($"item {round}", 0)));
            }
            else
            {
                inbox.PostTick();
                var (items, ticks, _) = await take.AsTask().WaitAsync(Waits.Limit);
                Assert.That((items.Count, ticks), Is.EqualTo((0, 1)));
            }
        }

        var last = inbox.TakeAsync();
        inbox.Close();
        var (_, _, closed) = await last.AsTask().WaitAsync(Waits.Limit);
        Assert.That(closed, Is.True, "the close wakes the waiting consumer");
        Assert.That(inbox.TryPost("after"), Is.False, "nothing is queued once closed");
    }

    [Test]
    public void ATakeOfWhatIsQueuedAllocatesNothing()
    {
        // The loop, the apply and the sync pipelines take several times per applied batch: a take
        // (or a wait) that allocates costs collections in proportion (docs/benchmarks.md, "Replicated
        // puts, session 13"). Warmed up first, so the lists have their capacity.
        var inbox = new NodeInbox<int>();
        for (var i = 0; i < 100; i++)
        {
            PostAndTake(inbox, i);
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 10_000; i++)
        {
            PostAndTake(inbox, i);
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(allocated, Is.LessThan(1_000), "10,000 posts and takes");
    }

    [Test]
    public async Task ASecondTakeWhileOneWaitsIsRefused()
    {
        var inbox = new NodeInbox<string>();
        var take = inbox.TakeAsync();
        Assert.That(take.IsCompleted, Is.False);
        Assert.Throws<InvalidOperationException>(() => _ = inbox.TakeAsync().AsTask(), "one consumer, one take at a time");
        inbox.TryPost("x");
        var (items, _, _) = await take.AsTask().WaitAsync(Waits.Limit);
        Assert.That(items, Is.EqualTo(new[] { "x" }));
    }

    private static void PostAndTake(NodeInbox<int> inbox, int value)
    {
        // No Assert.That on the measured path: a constraint is an allocation.
        if (!inbox.TryPost(value))
        {
            Assert.Fail("the inbox is open");
        }

        inbox.PostTick();

        // The take completes at once (checked below), so its result is taken without an await.
#pragma warning disable CA2012
        var take = inbox.TakeAsync();
        if (!take.IsCompletedSuccessfully)
        {
            Assert.Fail("something was queued: the take completes at once");
        }

        var (items, ticks, closed) = take.Result;
#pragma warning restore CA2012
        if (items.Count != 1 || items[0] != value || ticks != 1 || closed)
        {
            Assert.Fail($"took {items.Count} items, {ticks} ticks, closed {closed}; expected [{value}], 1 tick, open");
        }
    }
}
