using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using EmbeddedRaft.Consensus.Host;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>
/// Proposal envelopes sliced from reused slabs: a slab is written again only once no envelope of its
/// lease can be read, so an envelope a holder still references (a log, a message, a batch) never
/// changes under it; the pool stays within its bound and falls back to arrays of their own.
/// </summary>
[TestFixture]
public sealed class EnvelopeSlabPoolTests
{
    [Test]
    public void AnEnvelopeStillReferencedIsNeverOverwrittenWhileItsNeighboursSlabsAreReused([Values(1, 2, 3)] int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var pool = new EnvelopeSlabPool(slabBytes: 1024, maxSlabs: 4);
        var held = new List<(ReadOnlyMemory<byte> Envelope, byte[] Expected)>();

        for (var round = 0; round < 400; round++)
        {
            RentAndKeepSome(pool, random, held, count: random.Next(1, 40));

            // Holders let go of some envelopes at random, the way a log's cache or a batch does.
            for (var i = held.Count - 1; i >= 0; i--)
            {
                if (random.Next(4) == 0)
                {
                    held.RemoveAt(i);
                }
            }

            if (round % 5 == 4)
            {
                // The collector finds the leases nobody references; their finalizers give their slabs back.
                GC.Collect();
                GC.WaitForPendingFinalizers();
                GC.Collect();
            }

            foreach (var (envelope, expected) in held)
            {
                Assert.That(envelope.ToArray(), Is.EqualTo(expected), $"round {round}: an envelope still held changed (seed {seed})");
            }
        }

        Assert.That(pool.CreatedSlabs, Is.LessThanOrEqualTo(4), "never more slabs than the bound");
        Assert.That(pool.LeasedSlabs, Is.GreaterThan(pool.CreatedSlabs), "slabs were leased again (otherwise nothing here was tested)");
        Assert.That(pool.ReturnedSlabs, Is.GreaterThan(0));
    }

    [Test]
    public void ThreadsRentingAtOnceNeverShareAByte([Values(4, 5)] int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}");
        var pool = new EnvelopeSlabPool(slabBytes: 4096, maxSlabs: 1024); // room for every envelope: all stay held
        const int Threads = 4;
        var rented = new List<(ReadOnlyMemory<byte> Envelope, byte Fill)>[Threads];
        using var start = new Barrier(Threads);
        var workers = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
        {
            var random = new Random(seed * 100 + t);
            var mine = rented[t] = new List<(ReadOnlyMemory<byte>, byte)>();
            start.SignalAndWait();
            for (var i = 0; i < 2_000; i++)
            {
                var fill = (byte)random.Next(256);
                var envelope = pool.Rent(random.Next(1, pool.LargestSlicedBytes + 1), out var destination);
                destination.Fill(fill);
                mine.Add((envelope, fill));
            }
        })).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());

        var sliced = 0;
        foreach (var (envelope, fill) in rented.SelectMany(r => r))
        {
            Assert.That(envelope.ToArray(), Is.All.EqualTo(fill), $"an envelope was overwritten by another thread's (seed {seed})");
            sliced += MemoryMarshal.TryGetArray(envelope, out _) ? 0 : 1;
        }

        Assert.That(sliced, Is.GreaterThan(Threads * 2_000 / 2), "most envelopes came from shared slabs (otherwise nothing here was tested)");
    }

    [Test]
    public void EnvelopesFromASlabHoldTheirBytesAndTellNoArray()
    {
        var pool = new EnvelopeSlabPool(slabBytes: 1024, maxSlabs: 2);

        var first = ProposalEnvelope.Encode(origin: 7, requestId: 1, [1, 2, 3], pool);
        var second = ProposalEnvelope.Encode(origin: 7, requestId: 2, [4, 5], pool);

        Assert.That(ProposalEnvelope.TryDecode(first, out var origin, out var requestId, out var command), Is.True);
        Assert.That((origin, requestId, command.ToArray()), Is.EqualTo((7UL, 1UL, new byte[] { 1, 2, 3 })));
        Assert.That(ProposalEnvelope.TryDecode(second, out _, out requestId, out command), Is.True);
        Assert.That((requestId, command.ToArray()), Is.EqualTo((2UL, new byte[] { 4, 5 })));
        Assert.That(first.ToArray(), Is.EqualTo(ProposalEnvelope.Encode(7, 1, [1, 2, 3])), "the same bytes as an envelope of its own");
        Assert.That(MemoryMarshal.TryGetArray(first, out _), Is.False, "no holder can keep the slab without the lease");
        using var pin = first.Pin();
        unsafe
        {
            Assert.That(((byte*)pin.Pointer)[0], Is.EqualTo(ProposalEnvelope.Marker), "a pinned envelope points at its own first byte");
        }
    }

    [Test]
    public void WhenEverySlabIsLeasedOrAnEnvelopeIsLargeItGetsAnArrayOfItsOwn()
    {
        var pool = new EnvelopeSlabPool(slabBytes: 1024, maxSlabs: 1);
        var held = new List<ReadOnlyMemory<byte>>();
        for (var i = 0; i < 8; i++)
        {
            held.Add(pool.Rent(128, out var destination));
            destination.Fill((byte)i);
        }

        var past = pool.Rent(128, out var spare);
        spare.Fill(0xEE);
        var large = pool.Rent(pool.LargestSlicedBytes + 1, out _);

        Assert.That(MemoryMarshal.TryGetArray(past, out ArraySegment<byte> own), Is.True, "the one slab is full and leased: an array of its own");
        Assert.That(own.Count, Is.EqualTo(128));
        Assert.That(MemoryMarshal.TryGetArray(large, out ArraySegment<byte> largeOwn), Is.True, "larger than an eighth of a slab: an array of its own");
        Assert.That(largeOwn.Count, Is.EqualTo(pool.LargestSlicedBytes + 1));
        for (var i = 0; i < held.Count; i++)
        {
            Assert.That(held[i].ToArray(), Is.All.EqualTo((byte)i), $"envelope {i} of the full slab is intact");
        }

        Assert.That(pool.CreatedSlabs, Is.EqualTo(1));
    }

    // Its own frame, so no local of the caller keeps a dropped envelope (or its lease) reachable.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void RentAndKeepSome(EnvelopeSlabPool pool, Random random, List<(ReadOnlyMemory<byte>, byte[])> held, int count)
    {
        for (var i = 0; i < count; i++)
        {
            var length = random.Next(1, 129);
            var envelope = pool.Rent(length, out var destination);
            var expected = new byte[length];
            random.NextBytes(expected);
            expected.CopyTo(destination);
            if (random.Next(5) == 0)
            {
                held.Add((envelope, expected));
            }
        }
    }
}
