namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// Where <see cref="RaftNode{TResult}.ProposeAsync"/> writes its envelopes: consecutive slices of a
/// large array per thread instead of one new small array each. A proposal's envelope lives as long
/// as its entry is held anywhere (the unstable log's chunks, the durable log's cache, messages, the
/// apply): longer than the collector's young generation lasts under load, so a small array per
/// proposal was copied into the older generation once or twice before it died (most of the bytes
/// a put promoted: docs/benchmarks.md, "Replicated puts, session 23"). A chunk is allocated on the
/// large-object heap, which the collector never copies, and is freed once no slice of it is held.
/// </summary>
/// <remarks>
/// Invariants: a slice is written once, by the thread that hands it out, before it is handed out,
/// and never again (a chunk is never reused: the collector frees it when nothing references any
/// of its slices); slices of one chunk never overlap. The cost: a chunk stays alive while any one
/// of its slices is held, so an entry held long (a lagging follower's cache reads, a slow apply)
/// keeps up to <see cref="ChunkBytes"/> alive with it. An envelope larger than
/// <see cref="MaxSlicedBytes"/> gets an array of its own, as before.
/// </remarks>
internal static class EnvelopeSlab
{
    /// <summary>One chunk: above the large-object threshold (85,000 bytes), so it is never copied by a collection.</summary>
    internal const int ChunkBytes = 256 * 1024;

    /// <summary>The largest envelope sliced from a chunk (a quarter of one: at most a quarter of a chunk is left unused when it is replaced).</summary>
    internal const int MaxSlicedBytes = ChunkBytes / 4;

    [ThreadStatic]
    private static byte[]? t_chunk;

    [ThreadStatic]
    private static int t_used;

    /// <summary>Encodes <see cref="ProposalEnvelope"/>'s bytes for one proposal into this thread's chunk (or an array of its own when large).</summary>
    public static ReadOnlyMemory<byte> Encode(ulong origin, ulong requestId, ReadOnlySpan<byte> command)
    {
        int size = ProposalEnvelope.HeaderSizeBytes + command.Length;
        if (size > MaxSlicedBytes)
        {
            return ProposalEnvelope.Encode(origin, requestId, command);
        }

        var chunk = t_chunk;
        int start = t_used;
        if (chunk is null || chunk.Length - start < size)
        {
            // Never zeroed: every byte handed out is written below first.
            chunk = GC.AllocateUninitializedArray<byte>(ChunkBytes);
            t_chunk = chunk;
            start = 0;
        }

        var slice = chunk.AsMemory(start, size);
        ProposalEnvelope.EncodeInto(slice.Span, origin, requestId, command);

        // 8-byte aligned starts: an envelope's header reads stay within one cache line more often.
        t_used = Math.Min(chunk.Length, (start + size + 7) & ~7);
        return slice;
    }
}
