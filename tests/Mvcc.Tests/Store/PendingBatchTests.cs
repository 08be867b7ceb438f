using EmbeddedRaft.Mvcc.Index;
using EmbeddedRaft.Mvcc.Store;
using EmbeddedRaft.Storage;

namespace EmbeddedRaft.Mvcc.Tests.Store;

/// <summary>
/// The pending batch hands its buffers to the next batch only when no reader holds it: a reader
/// that took a batch before its commit reads the values it saw even while the writer fills the
/// next batch.
/// </summary>
public sealed class PendingBatchTests
{
    private const int Writes = 2_500; // more than two segments of entries and several value chunks

    [Test]
    public void AHeldBatchKeepsItsValuesWhileTheNextBatchIsWritten()
    {
        var held = Fill(new PendingBatch(), firstMain: 2, seed: 1);
        held.Hold();
        var next = Fill(held.Next(), firstMain: 2 + Writes, seed: 2);

        AssertHolds(held, firstMain: 2, seed: 1);
        AssertHolds(next, firstMain: 2 + Writes, seed: 2);
        held.Release();
    }

    [Test]
    public void AnUnheldBatchsBuffersAreReusedAndItNoLongerAnswers()
    {
        var old = Fill(new PendingBatch(), firstMain: 2, seed: 1);
        old.Hold();
        old.Release();
        var next = Fill(old.Next(), firstMain: 2 + Writes, seed: 2);

        AssertHolds(next, firstMain: 2 + Writes, seed: 2);
        Assert.That(old.Count, Is.Zero, "the replaced batch handed its entries over");
        Assert.That(old.TryGet(new Revision(2, 0), out _), Is.False, "so a reader that did not hold it finds nothing rather than another batch's value");
    }

    [Test]
    public void ABatchHeldAtItsSwapHandsItsBuffersToALaterBatchAtItsLastRelease()
    {
        // A watcher's consumer still decoding batch 1 when it is swapped out: batch 2 gets buffers of
        // its own; once the consumer lets go of batch 1, batch 3 writes into batch 1's buffers
        // (while batch 2 is held in its turn) instead of allocating new ones.
        var values = Enumerable.Range(0, Writes).Select(i => ValueOf(i, seed: 3)).ToArray();
        var first = Fill(new PendingBatch(), firstMain: 2, values);
        first.Hold();
        first.Hold();
        var second = first.Next();
        long freshBytes = AllocatedWhile(() => Fill(second, firstMain: 2 + Writes, values));
        second.Hold();
        first.Release();
        AssertHolds(first, firstMain: 2, seed: 3); // one reader still holds it: nothing of it is reused yet
        first.Release();

        var third = second.Next();
        long reusedBytes = AllocatedWhile(() => Fill(third, firstMain: 2 + (2 * Writes), values));

        AssertHolds(second, firstMain: 2 + Writes, seed: 3);
        AssertHolds(third, firstMain: 2 + (2 * Writes), seed: 3);
        Assert.That(reusedBytes, Is.LessThan(freshBytes / 3), $"batch 3 reuses batch 1's segments and chunks ({reusedBytes:N0} B allocated against {freshBytes:N0} B for batch 2; values over a quarter chunk always get arrays of their own)");
        second.Release();
    }

    [Test]
    public void TwoBatchesStillHeldAfterTheNextSwapBothLendTheirBuffersToLaterBatches()
    {
        // A live watcher's consumer decoding batch 1 and then batch 2 while each is swapped out (and
        // batch 1 still held at batch 2's swap): both let go only after batch 3 began. Batches 4 and
        // 5 then write into their buffers, one set each, instead of allocating new ones.
        var values = Enumerable.Range(0, Writes).Select(i => ValueOf(i, seed: 4)).ToArray();
        var first = Fill(new PendingBatch(), firstMain: 2, values);
        first.Hold();
        var second = first.Next();
        long freshBytes = AllocatedWhile(() => Fill(second, firstMain: 2 + Writes, values));
        second.Hold();
        var third = Fill(second.Next(), firstMain: 2 + (2 * Writes), values);
        third.Hold();
        first.Release();
        second.Release();

        var fourth = third.Next();
        long fourthBytes = AllocatedWhile(() => Fill(fourth, firstMain: 2 + (3 * Writes), values));
        fourth.Hold();
        var fifth = fourth.Next();
        long fifthBytes = AllocatedWhile(() => Fill(fifth, firstMain: 2 + (4 * Writes), values));

        AssertHolds(third, firstMain: 2 + (2 * Writes), seed: 4);
        AssertHolds(fourth, firstMain: 2 + (3 * Writes), seed: 4);
        AssertHolds(fifth, firstMain: 2 + (4 * Writes), seed: 4);
        Assert.That(fourthBytes, Is.LessThan(freshBytes / 3), $"batch 4 reuses one retired batch's buffers ({fourthBytes:N0} B against {freshBytes:N0} B fresh)");
        Assert.That(fifthBytes, Is.LessThan(freshBytes / 3), $"batch 5 reuses the other's, not dropped when the first slot was full ({fifthBytes:N0} B against {freshBytes:N0} B fresh)");
        third.Release();
        fourth.Release();
    }

    [Test]
    public void HoldingABatchAfterItWasSwappedOutIsAnInvariantViolation()
    {
        var old = Fill(new PendingBatch(), firstMain: 2, seed: 1);
        old.Hold();
        _ = old.Next();
        Assert.That(old.Hold, Throws.InstanceOf<InvariantViolationException>(), "its buffers may already serve the next batch");
    }

    [Test]
    public void ReleasingABatchMoreOftenThanItWasHeldIsAnInvariantViolation()
    {
        var batch = new PendingBatch();
        batch.Hold();
        batch.Release();
        Assert.That(batch.Release, Throws.InstanceOf<InvariantViolationException>());
    }

    [Test]
    public void RevisionsMustGrowWithinABatch()
    {
        var batch = new PendingBatch();
        batch.Add(new Revision(5, 1), tombstone: false, new byte[] { 1 });
        Assert.That(() => batch.Add(new Revision(5, 1), tombstone: false, new byte[] { 2 }), Throws.InstanceOf<InvariantViolationException>());
        Assert.That(() => batch.Add(new Revision(5, 0), tombstone: false, new byte[] { 2 }), Throws.InstanceOf<InvariantViolationException>());
    }

    /// <summary>Writes <see cref="Writes"/> values of varied length (a few past a quarter chunk, which get arrays of their own).</summary>
    private static PendingBatch Fill(PendingBatch batch, long firstMain, int seed) =>
        Fill(batch, firstMain, Enumerable.Range(0, Writes).Select(i => ValueOf(i, seed)).ToArray());

    private static PendingBatch Fill(PendingBatch batch, long firstMain, byte[][] values)
    {
        for (int i = 0; i < Writes; i++)
        {
            var value = values[i];
            var space = batch.Allocate(value.Length);
            value.CopyTo(space.Span);
            batch.Add(new Revision(firstMain + i, 0), tombstone: i % 10 == 9, space);
        }

        return batch;
    }

    private static void AssertHolds(PendingBatch batch, long firstMain, int seed)
    {
        Assert.That(batch.Count, Is.EqualTo(Writes));
        for (int i = 0; i < Writes; i++)
        {
            Assert.That(batch.TryGet(new Revision(firstMain + i, 0), out var entry), Is.True, $"revision {firstMain + i}");
            Assert.That(entry.StoredValue.ToArray(), Is.EqualTo(ValueOf(i, seed)), $"value of revision {firstMain + i}");
            Assert.That(entry.Tombstone, Is.EqualTo(i % 10 == 9));
        }

        Assert.That(batch.TryGet(new Revision(firstMain + Writes, 0), out _), Is.False);
        Assert.That(batch.UpTo(firstMain + 9).Select(e => e.Revision.Main), Is.EqualTo(Enumerable.Range(0, 10).Select(i => firstMain + i)));
    }

    private static long AllocatedWhile(Action action)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        action();
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }

    private static byte[] ValueOf(int i, int seed)
    {
        int length = i % 500 == 7 ? 20_000 : 1 + (i * 37 % 300);
        var value = new byte[length];
        for (int b = 0; b < length; b++)
        {
            value[b] = (byte)(seed * 31 + i + b);
        }

        return value;
    }
}
