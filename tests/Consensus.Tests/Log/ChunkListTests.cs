using System.Reflection;
using EmbeddedRaft.Consensus.Log;

namespace EmbeddedRaft.Consensus.Tests.Log;

/// <summary>
/// The chunked list under the durable log's entry cache: its items stay in order through appends
/// across chunk boundaries, removals from the front and cuts from the back; it never holds
/// references to removed items; and it keeps no chunk that holds nothing (but the one the next
/// append writes).
/// </summary>
public sealed class ChunkListTests
{
    private const int Chunk = ChunkList<long>.ChunkLength;

    [Test]
    public void RandomAddsRemovesAndCutsMatchAList([Values(1, 2, 3, 4, 5)] int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var list = new ChunkList<long>();
        var model = new List<long>();
        long next = 0;
        for (int step = 0; step < 2_000; step++)
        {
            // Sizes around the chunk length, so removals and cuts land on, before and after boundaries.
            int adds = random.Next(4) == 0 ? random.Next(5 * Chunk) : random.Next(Chunk + 2);
            for (int i = 0; i < adds; i++)
            {
                list.Add(next);
                model.Add(next++);
            }

            switch (random.Next(4))
            {
                case 0:
                    int keep = random.Next(model.Count + 1);
                    list.KeepFirst(keep);
                    model.RemoveRange(keep, model.Count - keep);
                    break;
                case 1:
                    int exact = Math.Min(model.Count, Chunk - 1 + random.Next(3));
                    list.RemoveFirst(exact);
                    model.RemoveRange(0, exact);
                    break;
                default:
                    int remove = random.Next(model.Count + 1);
                    list.RemoveFirst(remove);
                    model.RemoveRange(0, remove);
                    break;
            }

            Assert.That(list.Count, Is.EqualTo(model.Count), $"seed {seed} step {step}");
            for (int i = 0; i < model.Count; i++)
            {
                Assert.That(list[i], Is.EqualTo(model[i]), $"seed {seed} step {step} position {i}");
            }

            // At most the chunks the items span plus the one the next append writes.
            Assert.That(list.ChunkCount, Is.LessThanOrEqualTo((model.Count / Chunk) + 2), $"seed {seed} step {step}: chunks kept that hold nothing");
        }
    }

    [Test]
    public void RemovedItemsAreNotReferenced()
    {
        var list = new ChunkList<object>();
        for (int round = 0; round < 3; round++)
        {
            for (int i = 0; i < 10 * Chunk + 17; i++)
            {
                list.Add(new object());
            }

            list.RemoveFirst(list.Count - (Chunk + 7));
            Assert.That(HeldReferences(list), Is.EqualTo(list.Count), $"round {round} after RemoveFirst");
            list.KeepFirst(3);
            Assert.That(HeldReferences(list), Is.EqualTo(3), $"round {round} after KeepFirst");
        }

        for (int i = 0; i < 5 * Chunk; i++)
        {
            list.Add(new object());
            list.RemoveFirst(1);
            Assert.That(list.Count, Is.EqualTo(3));
            Assert.That(list.ChunkCount, Is.LessThanOrEqualTo(2));
        }

        Assert.That(HeldReferences(list), Is.EqualTo(3));
        list.Clear();
        Assert.That(HeldReferences(list), Is.EqualTo(0));
    }

    [Test]
    public void AnEmptiedListAppendsIntoAFreshChunk()
    {
        var list = new ChunkList<object>();
        for (int i = 0; i < Chunk; i++)
        {
            list.Add(new object());
        }

        var first = Chunks(list)[0];
        list.RemoveFirst(Chunk);
        Assert.That(list.ChunkCount, Is.EqualTo(0), "a chunk whose every slot was consumed is dropped");
        list.Add("next");
        Assert.That(Chunks(list)[0], Is.Not.SameAs(first));
        Assert.That(list[0], Is.EqualTo("next"));
    }

    private static List<object?[]> Chunks(ChunkList<object> list)
    {
        var ring = (RingList<object[]>)typeof(ChunkList<object>).GetField("_chunks", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(list)!;
        var chunks = new List<object?[]>();
        for (int i = 0; i < ring.Count; i++)
        {
            chunks.Add(ring[i]);
        }

        return chunks;
    }

    private static int HeldReferences(ChunkList<object> list) => Chunks(list).Sum(chunk => chunk.Count(item => item is not null));
}
