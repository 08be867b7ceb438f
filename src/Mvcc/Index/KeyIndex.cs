using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace EmbeddedRaft.Mvcc.Index;

/// <summary>
/// The store's ordered in-memory index, as etcd's <c>treeIndex</c>: every key with history, in
/// byte-wise key order, to its <see cref="KeyHistory"/>.
/// </summary>
/// <remarks>
/// A sorted list cut into chunks of at most <see cref="MaxChunkCount"/> entries: a lookup is two
/// binary searches, an insert moves at most one chunk's entries, and a range walks chunks in
/// order. (A plain sorted array moves half the index per insert; <c>SortedSet</c> counts a whole
/// range before yielding its first entry.) Each chunk keeps the first 8 bytes of every key as a
/// number beside it (<see cref="Prefix"/>), and the index the prefix of each chunk's first key, so a
/// binary search mostly compares numbers in one array and follows a pointer to a key only on a tie:
/// lookups are bound by memory latency, and this cut them several-fold. Not thread-safe: the store changes it only on its
/// writer thread under its write lock, and reads it under its read lock.
/// Invariant: no chunk is empty; keys ascend across and within chunks.
/// </remarks>
internal sealed class KeyIndex
{
    private const int MaxChunkCount = 512;

    private readonly List<Chunk> _chunks = [];

    /// <summary>Prefix of each chunk's first key, parallel to <see cref="_chunks"/>.</summary>
    private readonly List<ulong> _chunkPrefixes = [];

    /// <summary>Adds and removes so far: an <see cref="InsertPoint"/> is valid only while it is unchanged.</summary>
    private long _changeCount;

    /// <summary>Keys in the index.</summary>
    public int Count { get; private set; }

    /// <summary>
    /// The first 8 bytes of a key, zero-padded, as a big-endian number: unequal prefixes order
    /// keys as their bytes do (a shorter key's padding is below any byte that follows in a longer
    /// one, and equal padded prefixes fall back to the whole keys).
    /// </summary>
    public static ulong Prefix(ReadOnlySpan<byte> key)
    {
        if (key.Length >= 8)
        {
            return BinaryPrimitives.ReadUInt64BigEndian(key);
        }

        Span<byte> padded = stackalloc byte[8];
        padded.Clear();
        key.CopyTo(padded);
        return BinaryPrimitives.ReadUInt64BigEndian(padded);
    }

    public KeyHistory? Find(ReadOnlySpan<byte> key)
    {
        ulong prefix = Prefix(key);
        var (chunk, index) = LowerBound(key, prefix);
        if (chunk < _chunks.Count && index < _chunks[chunk].Items.Count && _chunks[chunk].Prefixes[index] == prefix && _chunks[chunk].Items[index].Key.AsSpan().SequenceEqual(key))
        {
            return _chunks[chunk].Items[index];
        }

        return null;
    }

    /// <summary>The history of <paramref name="key"/>, created (empty) when there is none.</summary>
    public KeyHistory GetOrAdd(ReadOnlySpan<byte> key) => FindForInsert(key, out var point) ?? Add(point, key);

    /// <summary>
    /// The history of <paramref name="key"/>, or null with <paramref name="point"/> set to where
    /// <see cref="Add"/> puts the key: one search for a key the writer looks up and then adds (a
    /// new key's put), where <see cref="Find"/> then <see cref="GetOrAdd"/> searched twice.
    /// </summary>
    public KeyHistory? FindForInsert(ReadOnlySpan<byte> key, out InsertPoint point)
    {
        ulong prefix = Prefix(key);
        if (_chunks.Count == 0)
        {
            point = new InsertPoint(0, 0, prefix, _changeCount);
            return null;
        }

        int chunkIndex = Math.Max(0, FindChunk(key, prefix));
        var chunk = _chunks[chunkIndex];
        int index = chunk.LowerBound(key, prefix);
        point = new InsertPoint(chunkIndex, index, prefix, _changeCount);
        if (index < chunk.Items.Count && chunk.Prefixes[index] == prefix && chunk.Items[index].Key.AsSpan().SequenceEqual(key))
        {
            return chunk.Items[index];
        }

        return null;
    }

    /// <summary>
    /// Adds <paramref name="key"/>, which <see cref="FindForInsert"/> did not find, at the
    /// <paramref name="point"/> it returned, and returns its new (empty) history.
    /// </summary>
    /// <exception cref="InvariantViolationException">The index changed since <paramref name="point"/> was found.</exception>
    public KeyHistory Add(in InsertPoint point, ReadOnlySpan<byte> key)
    {
        if (point.ChangeCount != _changeCount)
        {
            throw new InvariantViolationException($"MVCC key index: adding key {MvccText.Show(key)} at a position found before the index changed.");
        }

        _changeCount++;
        ulong prefix = point.Prefix;
        var history = new KeyHistory(CopyKey(key));
        Count++;
        if (_chunks.Count == 0)
        {
            var chunk0 = new Chunk();
            chunk0.Insert(0, history, prefix);
            _chunks.Add(chunk0);
            _chunkPrefixes.Add(prefix);
            return history;
        }

        int chunkIndex = point.Chunk;
        int index = point.Index;
        var chunk = _chunks[chunkIndex];
        if (index == chunk.Items.Count && chunk.Items.Count == MaxChunkCount && chunkIndex == _chunks.Count - 1)
        {
            // Appending past the last key (keys written in order): a new last chunk, so the full
            // ones stay full instead of being split in halves that never fill again.
            var next = new Chunk();
            next.Insert(0, history, prefix);
            _chunks.Add(next);
            _chunkPrefixes.Add(prefix);
            return history;
        }

        chunk.Insert(index, history, prefix);
        if (index == 0)
        {
            _chunkPrefixes[chunkIndex] = prefix;
        }

        if (chunk.Items.Count > MaxChunkCount)
        {
            var upper = chunk.SplitUpperHalf();
            _chunks.Insert(chunkIndex + 1, upper);
            _chunkPrefixes.Insert(chunkIndex + 1, upper.Prefixes[0]);
        }

        return history;
    }

    /// <summary>
    /// A key's bytes for the index, kept for as long as the key has history: allocated on the pinned
    /// object heap, which collections of the young generations neither scan nor copy, so a new key's
    /// bytes are not copied twice on their way to the old generation by the collections that run
    /// while thousands of writes are in flight (a key array holds no references; only a full
    /// collection frees it after compaction removed the key).
    /// </summary>
    private static byte[] CopyKey(ReadOnlySpan<byte> key)
    {
        var copy = GC.AllocateUninitializedArray<byte>(key.Length, pinned: true);
        key.CopyTo(copy);
        return copy;
    }

    /// <summary>
    /// Fills an empty index with <paramref name="histories"/> (distinct keys, any order) at once: one
    /// sort instead of an insert per key, for the rebuild at open.
    /// </summary>
    public void Load(ICollection<KeyHistory> histories)
    {
        if (Count != 0)
        {
            throw new InvariantViolationException("MVCC key index: bulk load into a non-empty index.");
        }

        // Sorted by prefix with the runtime's sort of primitive keys (no comparer call per
        // comparison), then each run of equal prefixes by its whole keys.
        var prefixes = new ulong[histories.Count];
        var items = new KeyHistory[histories.Count];
        int n = 0;
        foreach (var history in histories)
        {
            prefixes[n] = Prefix(history.Key);
            items[n++] = history;
        }

        Array.Sort(prefixes, items);
        for (int start = 0; start < n;)
        {
            int end = start + 1;
            while (end < n && prefixes[end] == prefixes[start])
            {
                end++;
            }

            if (end - start > 1)
            {
                Array.Sort(items, start, end - start, KeyHistoryOrder.Instance);
            }

            start = end;
        }

        const int FillCount = MaxChunkCount * 3 / 4;
        for (int start = 0; start < n; start += FillCount)
        {
            var chunk = new Chunk();
            for (int i = start; i < Math.Min(n, start + FillCount); i++)
            {
                if (i > 0 && Compare(items[i].Key, prefixes[i], prefixes[i - 1], items[i - 1]) <= 0)
                {
                    throw new InvariantViolationException($"MVCC key index: bulk load of key {MvccText.Show(items[i].Key)} twice.");
                }

                chunk.Insert(chunk.Items.Count, items[i], prefixes[i]);
            }

            _chunks.Add(chunk);
            _chunkPrefixes.Add(chunk.Prefixes[0]);
        }

        Count = n;
        _changeCount++;
    }

    /// <summary>Removes <paramref name="history"/>, which must be in the index.</summary>
    public void Remove(KeyHistory history)
    {
        var (chunkIndex, index) = LowerBound(history.Key, Prefix(history.Key));
        if (chunkIndex >= _chunks.Count || index >= _chunks[chunkIndex].Items.Count || !ReferenceEquals(_chunks[chunkIndex].Items[index], history))
        {
            throw new InvariantViolationException($"MVCC key index: removing key {MvccText.Show(history.Key)}, which is not in the index.");
        }

        var chunk = _chunks[chunkIndex];
        chunk.RemoveAt(index);
        Count--;
        _changeCount++;
        if (chunk.Items.Count == 0)
        {
            _chunks.RemoveAt(chunkIndex);
            _chunkPrefixes.RemoveAt(chunkIndex);
        }
        else if (index == 0)
        {
            _chunkPrefixes[chunkIndex] = chunk.Prefixes[0];
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
        var (chunkIndex, index) = LowerBound(key, Prefix(key));
        for (; chunkIndex < _chunks.Count; chunkIndex++, index = 0)
        {
            var items = _chunks[chunkIndex].Items;
            for (; index < items.Count; index++)
            {
                var history = items[index];
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
        var (chunkIndex, index) = LowerBound(from, Prefix(from));
        for (; chunkIndex < _chunks.Count && slice.Count < max; chunkIndex++, index = 0)
        {
            var items = _chunks[chunkIndex].Items;
            for (; index < items.Count && slice.Count < max; index++)
            {
                slice.Add(items[index]);
            }
        }

        return slice;
    }

    /// <summary>Every key, in order (for hashing and tests).</summary>
    public IEnumerable<KeyHistory> All()
    {
        foreach (var chunk in _chunks)
        {
            foreach (var history in chunk.Items)
            {
                yield return history;
            }
        }
    }

    /// <summary>Byte-wise order of whole keys (for keys with equal prefixes).</summary>
    private sealed class KeyHistoryOrder : IComparer<KeyHistory>
    {
        public static KeyHistoryOrder Instance { get; } = new();

        public int Compare(KeyHistory? x, KeyHistory? y) => x!.Key.AsSpan().SequenceCompareTo(y!.Key);
    }

    private static int Compare(ReadOnlySpan<byte> key, ulong prefix, ulong otherPrefix, KeyHistory other) =>
        prefix != otherPrefix ? (prefix < otherPrefix ? -1 : 1) : key.SequenceCompareTo(other.Key);

    /// <summary>The chunk whose first key is the last one &lt;= <paramref name="key"/>, or -1 when key is before every key.</summary>
    private int FindChunk(ReadOnlySpan<byte> key, ulong prefix)
    {
        int lo = 0;
        int hi = _chunks.Count - 1;
        int found = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (Compare(key, prefix, _chunkPrefixes[mid], _chunks[mid].Items[0]) >= 0)
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
    private (int Chunk, int Index) LowerBound(ReadOnlySpan<byte> key, ulong prefix)
    {
        int chunkIndex = FindChunk(key, prefix);
        if (chunkIndex < 0)
        {
            return (0, 0);
        }

        int index = _chunks[chunkIndex].LowerBound(key, prefix);
        return index < _chunks[chunkIndex].Items.Count ? (chunkIndex, index) : (chunkIndex + 1, 0);
    }

    /// <summary>Where <see cref="Add"/> puts a key <see cref="FindForInsert"/> did not find, valid while the index is unchanged (<see cref="ChangeCount"/>).</summary>
    internal readonly record struct InsertPoint(int Chunk, int Index, ulong Prefix, long ChangeCount);

    /// <summary>A run of consecutive keys with their prefixes. Invariant: the two lists are parallel and never empty in the index.</summary>
    private sealed class Chunk
    {
        public List<KeyHistory> Items { get; private init; } = new(MaxChunkCount + 1);

        public List<ulong> Prefixes { get; private init; } = new(MaxChunkCount + 1);

        public void Insert(int index, KeyHistory history, ulong prefix)
        {
            Items.Insert(index, history);
            Prefixes.Insert(index, prefix);
        }

        public void RemoveAt(int index)
        {
            Items.RemoveAt(index);
            Prefixes.RemoveAt(index);
        }

        public Chunk SplitUpperHalf()
        {
            int half = Items.Count / 2;
            int moved = Items.Count - half;
            var upper = new Chunk();
            upper.Items.AddRange(CollectionsMarshal.AsSpan(Items).Slice(half, moved));
            upper.Prefixes.AddRange(CollectionsMarshal.AsSpan(Prefixes).Slice(half, moved));
            Items.RemoveRange(half, moved);
            Prefixes.RemoveRange(half, moved);
            return upper;
        }

        /// <summary>The position of the first key &gt;= <paramref name="key"/> in this chunk.</summary>
        public int LowerBound(ReadOnlySpan<byte> key, ulong prefix)
        {
            int lo = 0;
            int hi = Items.Count;
            while (lo < hi)
            {
                int mid = (lo + hi) >>> 1;
                if (Compare(key, prefix, Prefixes[mid], Items[mid]) > 0)
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
}
