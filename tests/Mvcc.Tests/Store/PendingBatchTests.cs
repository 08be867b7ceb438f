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
    private static PendingBatch Fill(PendingBatch batch, long firstMain, int seed)
    {
        for (int i = 0; i < Writes; i++)
        {
            var value = ValueOf(i, seed);
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
