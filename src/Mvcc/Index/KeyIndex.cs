namespace EmbeddedRaft.Mvcc.Index;

/// <summary>
/// The store's ordered in-memory index, as etcd's <c>treeIndex</c>: every key with history, in
/// byte-wise key order, to its <see cref="KeyHistory"/>.
/// </summary>
/// <remarks>
/// A sorted list cut into chunks of at most <see cref="MaxChunkCount"/> entries: a lookup is two
/// binary searches, an insert moves at most one chunk's entries, and a range walks chunks in
/// order. (A plain sorted array moves half the index per insert; <c>SortedSet</c> counts a whole
/// range before yielding its first entry.) Not thread-safe: the store changes it only on its
/// writer thread under its write lock, and reads it under its read lock.
/// Invariant: no chunk is empty; keys ascend across and within chunks.
/// </remarks>
internal sealed class KeyIndex
{
    private const int MaxChunkCount = 512;

    private readonly List<List<KeyHistory>> _chunks = [];

    /// <summary>Keys in the index.</summary>
    public int Count { get; private set; }

    public KeyHistory? Find(ReadOnlySpan<byte> key)
    {
        var (chunk, index) = LowerBound(key);
        if (chunk < _chunks.Count && index < _chunks[chunk].Count && _chunks[chunk][index].Key.AsSpan().SequenceEqual(key))
        {
            return _chunks[chunk][index];
        }

        return null;
    }

    /// <summary>The history of <paramref name="key"/>, created (empty) when there is none.</summary>
    public KeyHistory GetOrAdd(ReadOnlySpan<byte> key)
    {
        if (_chunks.Count == 0)
        {
            var first = new KeyHistory(key.ToArray());
            _chunks.Add([first]);
            Count++;
            return first;
        }

        int chunkIndex = FindChunk(key);
        if (chunkIndex < 0)
        {
            chunkIndex = 0;
        }

        var chunk = _chunks[chunkIndex];
        int index = LowerBoundInChunk(chunk, key);
        if (index < chunk.Count && chunk[index].Key.AsSpan().SequenceEqual(key))
        {
            return chunk[index];
        }

        var history = new KeyHistory(key.ToArray());
        chunk.Insert(index, history);
        Count++;
        if (chunk.Count > MaxChunkCount)
        {
            int half = chunk.Count / 2;
            var upper = chunk.GetRange(half, chunk.Count - half);
            chunk.RemoveRange(half, chunk.Count - half);
            _chunks.Insert(chunkIndex + 1, upper);
        }

        return history;
    }

    /// <summary>Removes <paramref name="history"/>, which must be in the index.</summary>
    public void Remove(KeyHistory history)
    {
        var (chunkIndex, index) = LowerBound(history.Key);
        if (chunkIndex >= _chunks.Count || index >= _chunks[chunkIndex].Count || !ReferenceEquals(_chunks[chunkIndex][index], history))
        {
            throw new InvariantViolationException($"MVCC key index: removing key {MvccText.Show(history.Key)}, which is not in the index.");
        }

        var chunk = _chunks[chunkIndex];
        chunk.RemoveAt(index);
        Count--;
        if (chunk.Count == 0)
        {
            _chunks.RemoveAt(chunkIndex);
        }
    }

    /// <summary>
    /// Calls <paramref name="visitor"/> on each key of a request's range in key order until it
    /// returns false: just <paramref name="key"/> when <paramref name="rangeEnd"/> is empty, every key
    /// &gt;= it when <paramref name="rangeEnd"/> is the byte 0, else the keys in [key, rangeEnd).
    /// The visitor must not change the index.
    /// </summary>
    public void Visit(ReadOnlySpan<byte> key, ReadOnlySpan<byte> rangeEnd, Func<KeyHistory, bool> visitor)
    {
        if (rangeEnd.IsEmpty)
        {
            if (Find(key) is { } single)
            {
                visitor(single);
            }

            return;
        }

        bool toEnd = rangeEnd.Length == 1 && rangeEnd[0] == 0;
        var (chunkIndex, index) = LowerBound(key);
        for (; chunkIndex < _chunks.Count; chunkIndex++, index = 0)
        {
            var chunk = _chunks[chunkIndex];
            for (; index < chunk.Count; index++)
            {
                var history = chunk[index];
                if (!toEnd && history.Key.AsSpan().SequenceCompareTo(rangeEnd) >= 0)
                {
                    return;
                }

                if (!visitor(history))
                {
                    return;
                }
            }
        }
    }

    /// <summary>Up to <paramref name="max"/> keys &gt;= <paramref name="from"/>, in order (for compaction's steps).</summary>
    public List<KeyHistory> Slice(ReadOnlySpan<byte> from, int max)
    {
        var slice = new List<KeyHistory>(Math.Min(max, Count));
        var (chunkIndex, index) = LowerBound(from);
        for (; chunkIndex < _chunks.Count && slice.Count < max; chunkIndex++, index = 0)
        {
            var chunk = _chunks[chunkIndex];
            for (; index < chunk.Count && slice.Count < max; index++)
            {
                slice.Add(chunk[index]);
            }
        }

        return slice;
    }

    /// <summary>Every key, in order (for hashing and tests).</summary>
    public IEnumerable<KeyHistory> All()
    {
        foreach (var chunk in _chunks)
        {
            foreach (var history in chunk)
            {
                yield return history;
            }
        }
    }

    /// <summary>The chunk whose first key is the last one &lt;= <paramref name="key"/>, or -1 when key is before every key.</summary>
    private int FindChunk(ReadOnlySpan<byte> key)
    {
        int lo = 0;
        int hi = _chunks.Count - 1;
        int found = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_chunks[mid][0].Key.AsSpan().SequenceCompareTo(key) <= 0)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return found;
    }

    /// <summary>The position of the first key &gt;= <paramref name="key"/> (chunk past the end when none).</summary>
    private (int Chunk, int Index) LowerBound(ReadOnlySpan<byte> key)
    {
        int chunkIndex = FindChunk(key);
        if (chunkIndex < 0)
        {
            return (0, 0);
        }

        int index = LowerBoundInChunk(_chunks[chunkIndex], key);
        return index < _chunks[chunkIndex].Count ? (chunkIndex, index) : (chunkIndex + 1, 0);
    }

    private static int LowerBoundInChunk(List<KeyHistory> chunk, ReadOnlySpan<byte> key)
    {
        int lo = 0;
        int hi = chunk.Count;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (chunk[mid].Key.AsSpan().SequenceCompareTo(key) < 0)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo;
    }
}
