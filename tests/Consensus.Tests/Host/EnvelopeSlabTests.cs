using System.Runtime.InteropServices;
using EmbeddedRaft.Consensus.Host;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>
/// RaftNode's proposal envelopes are slices of a per-thread chunk (<see cref="EnvelopeSlab"/>): each
/// must keep its own bytes for as long as anything holds it, however many envelopes follow.
/// </summary>
[TestFixture]
public sealed class EnvelopeSlabTests
{
    [Test]
    public void EveryEnvelopeStillReadsAsItsOwnProposalAfterManyChunksOfLaterOnes()
    {
        const int seed = 2023;
        TestContext.Out.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var held = new List<(ReadOnlyMemory<byte> Envelope, ulong RequestId, byte[] Command)>();

        // Enough bytes for several chunks, with sizes from empty to above the sliced maximum.
        long written = 0;
        for (ulong requestId = 1; written < 6L * EnvelopeSlab.ChunkBytes; requestId++)
        {
            int length = random.Next(10) switch
            {
                0 => 0,
                1 => EnvelopeSlab.MaxSlicedBytes - ProposalEnvelope.HeaderSizeBytes + random.Next(2),
                2 => random.Next(EnvelopeSlab.MaxSlicedBytes, EnvelopeSlab.ChunkBytes),
                _ => random.Next(1, 2_000),
            };
            var command = new byte[length];
            random.NextBytes(command);
            var envelope = EnvelopeSlab.Encode(origin: 7, requestId, command);
            held.Add((envelope, requestId, command));
            written += envelope.Length;
        }

        foreach (var (envelope, requestId, command) in held)
        {
            Assert.That(ProposalEnvelope.TryDecode(envelope, out var origin, out var decodedId, out var decoded), Is.True, $"request {requestId}");
            Assert.That((origin, decodedId), Is.EqualTo((7UL, requestId)));
            Assert.That(decoded.ToArray(), Is.EqualTo(command), $"request {requestId}'s command, after {held.Count} envelopes");
        }
    }

    [Test]
    public void SmallEnvelopesShareAChunkWithoutOverlappingAndLargeOnesGetTheirOwnArray()
    {
        var first = EnvelopeSlab.Encode(1, 1, new byte[100]);
        var second = EnvelopeSlab.Encode(1, 2, new byte[100]);
        var large = EnvelopeSlab.Encode(1, 3, new byte[EnvelopeSlab.MaxSlicedBytes]);

        Assert.That(MemoryMarshal.TryGetArray(first, out var a), Is.True);
        Assert.That(MemoryMarshal.TryGetArray(second, out var b), Is.True);
        if (ReferenceEquals(a.Array, b.Array))
        {
            Assert.That(b.Offset, Is.GreaterThanOrEqualTo(a.Offset + a.Count), "the second slice starts after the first ends");
        }
        else
        {
            // The first filled its chunk's end: the second starts a new chunk.
            Assert.That(b.Offset, Is.Zero);
        }

        Assert.That(a.Array!.Length, Is.EqualTo(EnvelopeSlab.ChunkBytes), "a chunk large enough for the large-object heap");
        Assert.That(MemoryMarshal.TryGetArray(large, out var c) && c.Offset == 0 && c.Count == c.Array!.Length, Is.True, "an envelope above the sliced maximum is an array of its own");
    }
}
