using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.Storage;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>
/// The apply path's put run reuses its requests batch after batch: a request handed back by
/// <see cref="ReplicatedPutRun.Add"/> is never one the run still holds, and a cleared run keeps no
/// slice of the batch it held (the commands' bytes are valid only until that batch's apply completes).
/// </summary>
public sealed class ReplicatedPutRunTests
{
    [Test]
    public void ARequestHandedBackIsNeverOneTheRunHoldsAndAClearedRunKeepsNoSliceOfItsBatch()
    {
        var run = new ReplicatedPutRun();
        var decoding = new PutRequest();
        var seen = new HashSet<PutRequest>(ReferenceEqualityComparer.Instance);
        ulong index = 0;

        // Batches of 40, 5 and 70 puts (a later batch shorter, then longer, than the first).
        foreach (int size in new[] { 40, 5, 70 })
        {
            var held = new List<PutRequest>();
            for (int i = 0; i < size; i++)
            {
                var key = new byte[] { (byte)i, 1 };
                decoding.Overwrite(key, new byte[] { 7, 7, 7 }, 0, false, false, false);
                held.Add(decoding);
                var handedBack = run.Add(decoding, ++index);
                Assert.That(held, Has.None.SameAs(handedBack), "a request handed back must not be one the run holds");
                decoding = handedBack;
            }

            for (int i = 0; i < size; i++)
            {
                Assert.That(run.RequestAt(i), Is.SameAs(held[i]));
                Assert.That(run.RequestAt(i).Key.ToArray(), Is.EqualTo(new byte[] { (byte)i, 1 }));
                run.Answer(i, (long)index - size + i + 1);
            }

            run.Clear();
            Assert.That(run.Count, Is.Zero);
            foreach (var request in held)
            {
                seen.Add(request);
                Assert.That((request.Key.Length, request.Value.Length), Is.EqualTo((0, 0)), "a cleared run must drop its batch's slices");
            }
        }

        // Reused, not allocated per put: 115 puts went through at most 70 slots plus the one being decoded.
        Assert.That(seen.Count, Is.LessThanOrEqualTo(71));
    }

    [Test]
    public void TheSameRequestCannotBeAddedTwiceToOneSlot()
    {
        var run = new ReplicatedPutRun();
        var first = new PutRequest();
        var spare = run.Add(first, 1);
        run.Answer(0, 1);
        run.Clear();

        // The slot now holds 'first' as its spare: adding 'first' again there would alias it.
        Assert.That(() => run.Add(first, 2), Throws.TypeOf<InvariantViolationException>());
        Assert.That(spare, Is.Not.SameAs(first));
    }
}
