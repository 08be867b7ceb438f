using EmbeddedRaft.Mvcc.Index;
using EmbeddedRaft.Storage;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Index;

/// <summary>
/// The key index's native chunk blocks: every block handed out is its own (aligned, not overlapping
/// another in use), a returned block is handed out again before new memory is taken, and a block the
/// memory did not hand out is refused; an index whose chunks are removed and made again reuses their
/// blocks instead of growing.
/// </summary>
public sealed class ChunkMemoryTests
{
    private static IEnumerable<int> Seeds() => TestSeeds.Choose("MVCC_SEED", "MVCC_SOAK_SEEDS", first: 1, defaultCount: 3);

    [TestCaseSource(nameof(Seeds))]
    public void BlocksInUseNeverOverlapAndReturnedBlocksAreRentedAgainBeforeNewSlabs(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with MVCC_SEED={seed}");
        var random = new Random(seed);
        const int BlockBytes = 12_992;
        var memory = new ChunkMemory(BlockBytes);
        var inUse = new List<nint>();
        for (int step = 0; step < 2_000; step++)
        {
            if (inUse.Count > 0 && random.Next(3) == 0)
            {
                int victim = random.Next(inUse.Count);
                long slabBytesBefore = memory.SlabBytes;
                memory.Return(inUse[victim]);
                var returned = inUse[victim];
                inUse.RemoveAt(victim);

                // The next rent takes the block back: no new memory while one is free.
                var again = memory.Rent();
                Assert.That(again, Is.EqualTo(returned), $"step {step}: a returned block is rented again first");
                Assert.That(memory.SlabBytes, Is.EqualTo(slabBytesBefore), $"step {step}: no slab added while a block was free");
                inUse.Add(again);
                continue;
            }

            var block = memory.Rent();
            Assert.That((long)(block % 64), Is.Zero, $"step {step}: a block is aligned to a cache line");
            inUse.Add(block);
        }

        var sorted = inUse.Order().ToList();
        for (int i = 1; i < sorted.Count; i++)
        {
            Assert.That((long)(sorted[i] - sorted[i - 1]), Is.GreaterThanOrEqualTo(BlockBytes), "blocks in use do not overlap");
        }

        Assert.That(memory.SlabBytes, Is.LessThanOrEqualTo(((long)inUse.Count * BlockBytes) + (4L << 20)), "slabs hold the blocks in use, one slab's tail and the small first slabs at most");
    }

    [Test]
    public void ABlockTheMemoryDidNotHandOutIsRefused()
    {
        var memory = new ChunkMemory(64);
        var block = memory.Rent();
        var other = new ChunkMemory(64).Rent();

        Assert.Throws<InvariantViolationException>(() => memory.Return(other), "a block of another memory");
        Assert.Throws<InvariantViolationException>(() => memory.Return(block + 8), "an address inside a block");
        Assert.DoesNotThrow(() => memory.Return(block));
    }

    [Test]
    public void AnIndexWhoseChunksAreRemovedAndMadeAgainReusesTheirBlocks()
    {
        var index = new KeyIndex();
        long main = 0;
        long firstRoundSlabBytes = 0;
        for (int round = 0; round < 4; round++)
        {
            // 20,000 in-order keys (40 chunks), then every one removed (each emptied chunk gives its block back).
            var keys = Enumerable.Range(0, 20_000).Select(i => BitConverter.GetBytes(i).Reverse().ToArray()).ToList();
            foreach (var key in keys)
            {
                Assert.That(index.Find(key, out var position), Is.False);
                index.Add(position, key, new Revision(++main, 0));
            }

            long slabBytes = index.ChunkSlabBytes;
            if (round == 0)
            {
                firstRoundSlabBytes = slabBytes;
            }
            else
            {
                Assert.That(slabBytes, Is.EqualTo(firstRoundSlabBytes), $"round {round}: the removed chunks' blocks were reused, no new slab");
            }

            foreach (var key in keys)
            {
                index.Remove(key);
            }

            Assert.That(index.Count, Is.Zero);
            TestContext.Out.WriteLine($"round {round}: {slabBytes} bytes of slabs");
        }
    }
}
