using EmbeddedRaft.Storage;

namespace EmbeddedRaft.Consensus.Log;

/// <summary>
/// A list that grows at its end and shrinks at both ends, its items held in fixed-size chunks
/// allocated as the list grows (never reused): an append writes into the newest chunk, which is
/// usually still in the collector's youngest generation. Removed slots are cleared so the garbage
/// collector can take what they referenced. Not thread-safe.
/// </summary>
/// <remarks>
/// <para>Why chunks rather than one ring (<see cref="RingList{T}"/>): the durable log's entry cache
/// takes every new entry's <see cref="Messages.Entry.Data"/>, a young array. A ring's array
/// lives as long as the log, so it sits in gen2, and every such store into it is an old-to-young
/// reference: the write barrier sets the slot's 256-byte card, and the next gen0 collection scans
/// every card set since the last one (docs/benchmarks.md, "Replicated puts, session 29" and
/// "session 30"). A store into an object that is itself in gen0 sets no card, so a chunk filled
/// between two collections costs the collector nothing for its appends; only the list of chunks
/// (one reference per chunk) is written in an old object.</para>
/// <para>Invariants: the items are positions <c>[_head, _head + Count)</c> of the concatenated
/// chunks; <c>0 &lt;= _head &lt; ChunkLength</c>; every chunk holds an item or is the one the next
/// append writes (position <c>_head + Count</c>); every slot outside the items is <c>default</c>.</para>
/// </remarks>
internal sealed class ChunkList<T>
{
    /// <summary>Items per chunk (a power of two): 256 of the entry cache's 16-byte data references are 4 KiB, filled in ~5 ms at 50,000 entries/s.</summary>
    internal const int ChunkLength = 256;

    private const int ChunkShift = 8;
    private const int ChunkMask = ChunkLength - 1;

    private readonly RingList<T[]> _chunks = new();
    private int _head;

    public int Count { get; private set; }

    /// <summary>For tests: how many chunks are held.</summary>
    internal int ChunkCount => _chunks.Count;

    public ref T this[int position]
    {
        get
        {
            if ((uint)position >= (uint)Count)
            {
                throw new InvariantViolationException($"Chunk list position {position} is outside 0..{Count - 1}.");
            }

            int at = _head + position;
            return ref _chunks[at >> ChunkShift][at & ChunkMask];
        }
    }

    public void Add(in T item)
    {
        int at = _head + Count;
        if (at == _chunks.Count << ChunkShift)
        {
            _chunks.Add(new T[ChunkLength]);
        }

        _chunks[at >> ChunkShift][at & ChunkMask] = item;
        Count++;
    }

    /// <summary>Removes the first <paramref name="count"/> items.</summary>
    public void RemoveFirst(int count)
    {
        if ((uint)count > (uint)Count)
        {
            throw new InvariantViolationException($"Cannot remove {count} of {Count} items.");
        }

        ClearPositions(_head, _head + count);
        _head += count;
        Count -= count;

        // Whole chunks before the head go (all of them when the head reached the end of the last:
        // the next append then starts a fresh chunk).
        int drop = _head >> ChunkShift;
        if (drop > 0)
        {
            _chunks.RemoveFirst(drop);
            _head -= drop << ChunkShift;
        }
    }

    /// <summary>Keeps the first <paramref name="count"/> items and removes the rest.</summary>
    public void KeepFirst(int count)
    {
        if ((uint)count > (uint)Count)
        {
            throw new InvariantViolationException($"Cannot keep {count} of {Count} items.");
        }

        ClearPositions(_head + count, _head + Count);
        Count = count;

        // Chunks after the one the next append writes go (their slots are already cleared).
        int keepChunks = ((_head + count) >> ChunkShift) + 1;
        if (keepChunks < _chunks.Count)
        {
            _chunks.KeepFirst(keepChunks);
        }
    }

    public void Clear() => KeepFirst(0);

    // Clears the slots of positions [from, to) so nothing removed stays referenced (a dropped chunk
    // that has reached an older generation is only collected later, and until then its set cards
    // would still be scanned and keep what its slots referenced alive).
    private void ClearPositions(int from, int to)
    {
        while (from < to)
        {
            var chunk = _chunks[from >> ChunkShift];
            int start = from & ChunkMask;
            int length = Math.Min(ChunkLength - start, to - from);
            Array.Clear(chunk, start, length);
            from += length;
        }
    }
}
