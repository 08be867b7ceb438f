using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.Storage;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>
/// A batch's results keep each plain put's revision unboxed until the node reads it (only the
/// proposer's member does), read back exactly what was added in order, and are reusable batch
/// after batch.
/// </summary>
public sealed class ReplicatedApplyResultsTests
{
    [Test]
    public void EveryResultReadsBackAsAddedAcrossReusedBatches()
    {
        var results = new ReplicatedApplyResults();
        var refusal = new MvccException(MvccError.EmptyKey, "refused");
        var response = new object();

        // Two batches, the second longer than the first and the arrays' first size (16).
        foreach (int size in new[] { 10, 50 })
        {
            results.Clear();
            for (int i = 0; i < size; i++)
            {
                switch (i % 4)
                {
                    case 0: results.AddRevision(1_000 + i); break;
                    case 1: results.Add(refusal); break;
                    case 2: results.Add(null); break;
                    default: results.Add(response); break;
                }
            }

            Assert.That(results.Count, Is.EqualTo(size));
            for (int i = 0; i < size; i++)
            {
                object? expected = (i % 4) switch { 0 => (long)(1_000 + i), 1 => refusal, 2 => null, _ => response };
                Assert.That(results[i], Is.EqualTo(expected), $"result {i} of a batch of {size}");
            }

            Assert.That(results.ToList(), Has.Count.EqualTo(size));
            Assert.That(() => results[size], Throws.TypeOf<ArgumentOutOfRangeException>());
        }
    }

    [Test]
    public void AClearedSlotThatHeldARevisionDoesNotReadAsOneWhenReusedForAnotherResult()
    {
        var results = new ReplicatedApplyResults();
        results.AddRevision(7);
        results.Clear();
        results.Add(null);
        Assert.That(results[0], Is.Null);
    }

    [Test]
    public void ANonPositiveRevisionIsAnInvariantViolation()
    {
        var results = new ReplicatedApplyResults();
        Assert.That(() => results.AddRevision(0), Throws.TypeOf<InvariantViolationException>());
        Assert.That(results.Count, Is.Zero);
    }

    [Test]
    public void RevisionsThatAreNeverReadAllocateNothing()
    {
        var results = new ReplicatedApplyResults();

        // Grown to its size first (and the code jitted): only the steady state is measured.
        for (int i = 0; i < 1_024; i++)
        {
            results.AddRevision(i + 1);
        }

        results.Clear();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1_024; i++)
        {
            results.AddRevision(i + 1);
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(allocated, Is.Zero, "a member that never reads a put's result must not box its revision");
        Assert.That(results[1_023], Is.EqualTo(1_024L));
    }
}
