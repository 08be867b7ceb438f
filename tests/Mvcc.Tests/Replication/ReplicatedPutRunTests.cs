using System.Reflection;
using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.Storage;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>
/// The apply path's put run copies each put it is given (the caller decodes the next put into the
/// same request), hands the writer every put exactly as it was added — through growth and batch
/// after batch of different sizes — and keeps no slice of a batch once cleared (the commands' bytes
/// are valid only until that batch's apply completes).
/// </summary>
public sealed class ReplicatedPutRunTests
{
    [Test]
    public void EveryPutIsHandedToTheWriterAsAddedAndAClearedRunKeepsNoSliceOfItsBatch([Values(1, 2, 3)] int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var run = new ReplicatedPutRun();
        var decoding = new PutRequest();
        ulong index = 0;

        // Batches shorter, then longer, than the run's arrays (16 at first), so they grow mid-batch.
        foreach (int size in new[] { 40, 5, 70, 1, 129 })
        {
            var added = new List<(byte[] Key, byte[] Value, long Lease, bool IgnoreValue, bool IgnoreLease)>();
            for (int i = 0; i < size; i++)
            {
                var key = new byte[] { (byte)i, (byte)random.Next(256) };
                var value = new byte[random.Next(0, 5)];
                random.NextBytes(value);
                long lease = random.Next(3);
                bool ignoreValue = random.Next(4) == 0;
                bool ignoreLease = random.Next(4) == 0;

                // One request refilled for every put, as the store's apply decodes them.
                decoding.Overwrite(key, value, lease, false, ignoreValue, ignoreLease);
                run.Add(decoding, ++index);
                added.Add((key, value, lease, ignoreValue, ignoreLease));
            }

            decoding.Clear();
            Assert.That(run.Count, Is.EqualTo(size));
            foreach (int i in Enumerable.Range(0, size).OrderBy(_ => random.Next()))
            {
                var request = run.RequestAt(i);
                Assert.That(request.Key.ToArray(), Is.EqualTo(added[i].Key), $"seed {seed}: put {i} of {size}");
                Assert.That(request.Value.ToArray(), Is.EqualTo(added[i].Value), $"seed {seed}: put {i} of {size}");
                Assert.That((request.Lease, request.IgnoreValue, request.IgnoreLease, request.PrevKv), Is.EqualTo((added[i].Lease, added[i].IgnoreValue, added[i].IgnoreLease, false)), $"seed {seed}: put {i} of {size}");
                Assert.That(run.IndexAt(i), Is.EqualTo(index - (ulong)size + (ulong)i + 1));
            }

            for (int i = 0; i < size; i++)
            {
                run.Answer(i, (long)index - size + i + 1);
            }

            run.Clear();
            Assert.That(run.Count, Is.Zero);
            Assert.That(SlicesHeld(run), Is.Zero, "a cleared run must drop its batch's slices");
            Assert.That(() => run.RequestAt(0), Throws.TypeOf<InvariantViolationException>());
        }
    }

    [Test]
    public void APutAskingForItsPreviousKeyValueIsRefused()
    {
        var run = new ReplicatedPutRun();
        var request = new PutRequest { Key = new byte[] { 1 }, PrevKv = true };
        Assert.That(() => run.Add(request, 1), Throws.TypeOf<InvariantViolationException>());
        Assert.That(run.Count, Is.Zero);
    }

    [Test]
    public void IndexesMustGrowAlongTheRun()
    {
        var run = new ReplicatedPutRun();
        run.Add(new PutRequest { Key = new byte[] { 1 } }, 5);
        Assert.That(() => run.Add(new PutRequest { Key = new byte[] { 2 } }, 5), Throws.TypeOf<InvariantViolationException>());
    }

    // Slices of commands the run still references: its key and value slots and its view request.
    private static int SlicesHeld(ReplicatedPutRun run)
    {
        int held = 0;
        foreach (var name in new[] { "_keys", "_values" })
        {
            var slots = (ReadOnlyMemory<byte>[])typeof(ReplicatedPutRun).GetField(name, BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(run)!;
            held += slots.Count(slot => !slot.Equals(default(ReadOnlyMemory<byte>)));
        }

        var view = (PutRequest)typeof(ReplicatedPutRun).GetField("_view", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(run)!;
        return held + (view.Key.Equals(default(ReadOnlyMemory<byte>)) ? 0 : 1) + (view.Value.Equals(default(ReadOnlyMemory<byte>)) ? 0 : 1);
    }
}
