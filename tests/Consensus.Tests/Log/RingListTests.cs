using System.Reflection;
using EmbeddedRaft.Consensus.Log;

namespace EmbeddedRaft.Consensus.Tests.Log;

/// <summary>
/// The ring under the durable log's slot table and entry cache: it keeps its array through the
/// refill after each compaction (no regrowth from 16 slots per snapshot), still gives a one-off
/// burst's memory back, never holds references to removed items, and keeps its items in order
/// through every resize.
/// </summary>
public sealed class RingListTests
{
    [Test]
    public void RingRefilledAfterEveryCompactionKeepsItsArray()
    {
        var ring = new RingList<long>();
        long next = 0;
        for (int i = 0; i < 10_000; i++)
        {
            ring.Add(next++);
        }

        int capacity = ring.Capacity;
        Assert.That(capacity, Is.EqualTo(16_384));
        for (int interval = 0; interval < 20; interval++)
        {
            // A snapshot compacts all but a few entries, then the next interval refills the log.
            ring.RemoveFirst(ring.Count - 5);
            Assert.That(ring.Capacity, Is.EqualTo(capacity), $"after compaction {interval}");
            for (int i = 0; i < 9_995; i++)
            {
                ring.Add(next++);
            }

            Assert.That(ring.Capacity, Is.EqualTo(capacity), $"after refill {interval}");
            Assert.That(ring[0], Is.EqualTo(next - ring.Count));
            Assert.That(ring[ring.Count - 1], Is.EqualTo(next - 1));
        }
    }

    [Test]
    public void OneOffBurstIsGivenBackOnceTheLoadIsSmaller()
    {
        var ring = new RingList<long>();
        long next = 0;
        for (int i = 0; i < 200_000; i++)
        {
            ring.Add(next++);
        }

        Assert.That(ring.Capacity, Is.EqualTo(262_144));
        ring.RemoveFirst(ring.Count - 10);

        // Then a steady load of at most 1,010 items: the array shrinks to fit that peak once the ring
        // has taken in half its length, and stays there.
        long added = 0;
        while (ring.Capacity > 2_048)
        {
            for (int i = 0; i < 1_000; i++)
            {
                ring.Add(next++);
            }

            added += 1_000;
            ring.RemoveFirst(ring.Count - 10);
            Assert.That(added, Is.LessThanOrEqualTo(262_144 / 2 + 1_000), "the burst's array was never given back");
        }

        Assert.That(ring.Capacity, Is.EqualTo(2_048));
        for (int i = 0; i < ring.Count; i++)
        {
            Assert.That(ring[i], Is.EqualTo(next - ring.Count + i));
        }
    }

    [Test]
    public void RemovedItemsAreNotReferencedThroughResizes()
    {
        var ring = new RingList<object>();
        for (int round = 0; round < 3; round++)
        {
            for (int i = 0; i < 50_000; i++)
            {
                ring.Add(new object());
            }

            ring.RemoveFirst(ring.Count - 7);
            Assert.That(HeldReferences(ring), Is.EqualTo(ring.Count), $"round {round} after RemoveFirst");
            ring.KeepFirst(3);
            Assert.That(HeldReferences(ring), Is.EqualTo(3), $"round {round} after KeepFirst");
        }

        for (int i = 0; i < 100_000; i++)
        {
            ring.Add(new object());
            ring.RemoveFirst(1);
            Assert.That(ring.Count, Is.EqualTo(3));
        }

        Assert.That(HeldReferences(ring), Is.EqualTo(3));
        ring.Clear();
        Assert.That(HeldReferences(ring), Is.EqualTo(0));
    }

    [Test]
    public void RandomAddsAndRemovesMatchAList([Values(1, 2, 3, 4, 5)] int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var ring = new RingList<long>();
        var model = new List<long>();
        long next = 0;
        for (int step = 0; step < 400; step++)
        {
            // Bursts of very different sizes so the ring grows, stays, and shrinks.
            int adds = random.Next(4) == 0 ? random.Next(20_000) : random.Next(300);
            for (int i = 0; i < adds; i++)
            {
                ring.Add(next);
                model.Add(next++);
            }

            if (random.Next(3) == 0)
            {
                int keep = random.Next(model.Count + 1);
                ring.KeepFirst(keep);
                model.RemoveRange(keep, model.Count - keep);
            }
            else
            {
                int remove = random.Next(model.Count + 1);
                ring.RemoveFirst(remove);
                model.RemoveRange(0, remove);
            }

            Assert.That(ring.Count, Is.EqualTo(model.Count), $"seed {seed} step {step}");
            Assert.That(ring.Capacity, Is.GreaterThanOrEqualTo(ring.Count));
            for (int i = 0; i < model.Count; i += 1 + (model.Count / 64))
            {
                Assert.That(ring[i], Is.EqualTo(model[i]), $"seed {seed} step {step} position {i}");
            }
        }
    }

    private static int HeldReferences(RingList<object> ring)
    {
        var items = (object?[])typeof(RingList<object>).GetField("_items", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(ring)!;
        return items.Count(item => item is not null);
    }
}
