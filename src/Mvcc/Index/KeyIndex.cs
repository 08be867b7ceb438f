using System.Buffers;
using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace EmbeddedRaft.Mvcc.Index;

/// <summary>
/// The store's ordered in-memory index, as etcd's <c>treeIndex</c>: every key with history, in
/// byte-wise key order, to its revisions (etcd's <c>keyIndex</c>).
/// </summary>
/// <remarks>
/// <para>A sorted list cut into chunks of at most <see cref="MaxChunkCount"/> entries: a lookup is a
/// binary search of the chunks (one comparison with the last key for a key past it: keys written in
/// order), then, in the chunk, one pass over every 8th key's prefix and a binary search of the few
/// keys between two of them (<see cref="Chunk"/>'s summary), an
/// insert moves at most one chunk's entries, and a range walks chunks in order. (A plain sorted array
/// moves half the index per insert; <c>SortedSet</c> counts a whole range before yielding its first
/// entry.) Each chunk knows the bytes all its keys begin with (<see cref="Chunk"/>'s shared bytes) and
/// keeps the 8 bytes of every key that follow them as a number beside it (<see cref="Prefix"/>), and
/// the index does the same for the chunks' first keys, so a binary search compares numbers in one
/// array and follows a pointer to a key only on a tie: lookups are bound by memory latency. The
/// shared bytes are skipped because keys share long prefixes (etcd's <c>/registry/pods/...</c>,
/// store-load's <c>/store-load/000042</c>): with the first 8 bytes of the whole key every probe tied
/// and compared whole keys, three cache misses a step (docs/benchmarks.md, "Replicated reads,
/// session 11").</para>
/// <para>Entries without an object of their own: a key's bytes are copied into its chunk's one key
/// array (<see cref="Chunk"/>), and a key whose whole history is the one put that created it (most
/// keys between compactions, and every key of a store written once) is those bytes and that revision
/// in its chunk's arrays, with no <see cref="KeyHistory"/>, and so is a key written twice since it was
/// created (its second put in a pinned array of the chunk's, <see cref="Chunk"/>'s seconds); the key
/// gets one (same answers) when it is written a third time, deleted or compacted past its first put,
/// or when it comes from the file with an older history. So a new key's put
/// allocates no object at all (the pinned array per key it replaced was about a sixth of the writer
/// thread's samples in a profile of in-order puts: docs/benchmarks.md, "MVCC in-order puts and the
/// open, session 10"), and the collections that run while thousands of writes are in flight copy no
/// object per key.</para>
/// <para>Chunks on the pinned object heap: a chunk's arrays (prefixes, entries, key bytes) hold no
/// references (a key's history object is in a separate array, made only when a key of the chunk
/// gets one) and are allocated pinned, so they never pass through gen0 and gen1: the index's growth
/// (about 22 B per in-order 16-byte key written once: an 8 B prefix, a 12 B entry, its bytes past
/// those its chunk's keys share and its prefix holds) is not copied twice by the
/// collections that run while the writer adds keys (it was about 85% of what a gen0 collection
/// promoted during in-order puts, and the pauses stopped the writer: docs/benchmarks.md, "MVCC
/// in-order puts, session 16"). Three allocations per chunk of up to 512 keys (two when no key of
/// an appended chunk has a tail: its key array is made at its first tail); a chunk dropped by
/// compaction or a rebuilt key array leaves a hole there that later chunks reuse (the pinned heap is
/// swept, not compacted).</para>
/// <para>Not thread-safe: the store changes it only on its writer thread under its write lock, and
/// reads it under its read lock. A <see cref="Position"/> is valid until the next add or removal
/// (<see cref="Position.ChangeCount"/>, checked where it is used to change the index).
/// Invariant: no chunk is empty; keys ascend across and within chunks.</para>
/// </remarks>
internal sealed class KeyIndex
{
    private const int MaxChunkCount = 512;

    /// <summary>
    /// Bytes of a key's rest (its bytes after its chunk's shared ones) that its <see cref="Prefix"/>
    /// holds: a chunk copies only the bytes past these into its key array, since the prefix array
    /// already has them (<see cref="Chunk"/>'s tails).
    /// </summary>
    private const int PrefixBytes = sizeof(ulong);

    /// <summary>A chunk's summary holds every this many'th prefix: 8 prefixes are one 64-byte cache line.</summary>
    private const int SummaryStride = 8;

    /// <summary>Sampled prefixes of a full chunk (MaxChunkCount + 1 keys), rounded up to whole 256-bit vectors.</summary>
    private const int SummaryLength = (((MaxChunkCount + SummaryStride) / SummaryStride) + 3) / 4 * 4;

    private readonly List<Chunk> _chunks = [];

    /// <summary>
    /// The <see cref="Prefix"/> of each chunk's first key after <see cref="_chunkShared"/>, parallel
    /// to <see cref="_chunks"/>.
    /// </summary>
    private readonly List<ulong> _chunkPrefixes = [];

    /// <summary>
    /// Bytes every chunk's first key begins with: those the first and last chunks' first keys share
    /// (keys between two in byte order share what those two share). Invariant: each chunk's entry of
    /// <see cref="_chunkPrefixes"/> is the prefix of its first key after these bytes.
    /// </summary>
    private byte[] _chunkShared = [];

    /// <summary>Adds and removals so far: a <see cref="Position"/> is valid only while it is unchanged.</summary>
    private long _changeCount;

    /// <summary>Keys in the index.</summary>
    public int Count { get; private set; }

    /// <summary>Bytes the chunks' key arrays hold for keys' tails, used or not (for tests: what a chunk reserves).</summary>
    internal long TailBytesCapacity
    {
        get
        {
            long bytes = 0;
            foreach (var chunk in _chunks)
            {
                bytes += chunk.KeyBytes.Length;
            }

            return bytes;
        }
    }

    /// <summary>
    /// The first 8 bytes of a key (or of the rest of a key after bytes it shares with others),
    /// zero-padded, as a big-endian number: unequal prefixes order keys as their bytes do (a shorter
    /// key's padding is below any byte that follows in a longer one, and equal padded prefixes fall
    /// back to the lengths, or to the whole keys when either is longer than 8 bytes).
    /// </summary>
    public static ulong Prefix(ReadOnlySpan<byte> key)
    {
        if (key.Length >= 8)
        {
            return BinaryPrimitives.ReadUInt64BigEndian(key);
        }

        ulong prefix = 0;
        for (int i = 0; i < key.Length; i++)
        {
            prefix |= (ulong)key[i] << (56 - (8 * i));
        }

        return prefix;
    }

    /// <summary>
    /// How <paramref name="key"/> orders against keys that all begin with <paramref name="shared"/>:
    /// negative when before every such key, positive when after every one, zero when it begins with
    /// <paramref name="shared"/> too.
    /// </summary>
    private static int CompareToShared(ReadOnlySpan<byte> key, ReadOnlySpan<byte> shared) =>
        key[..Math.Min(key.Length, shared.Length)].SequenceCompareTo(shared);

    // ------------------------------------------------------------ reading (readers and the writer)

    /// <summary>
    /// The version of <paramref name="key"/> visible at main revision <paramref name="atMain"/>: its
    /// revision, the revision that created its generation, and its version; false when the key did
    /// not exist then or is not in the index (etcd's <c>treeIndex.Get</c>).
    /// </summary>
    public bool TryGet(ReadOnlySpan<byte> key, long atMain, out Revision modified, out Revision created, out long version)
    {
        if (Find(key, out var position))
        {
            return TryGet(position, atMain, out modified, out created, out version);
        }

        modified = default;
        created = default;
        version = 0;
        return false;
    }

    /// <summary>
    /// <see cref="TryGet(ReadOnlySpan{byte}, long, out Revision, out Revision, out long)"/> of each of
    /// <paramref name="keys"/> at its <paramref name="atMain"/>: whether it existed then in
    /// <paramref name="found"/>, its revision then in <paramref name="modified"/> (default when not
    /// found). Same answers as one lookup each; the lookups' cache misses overlap.
    /// </summary>
    /// <remarks>
    /// A lookup is a chain of dependent misses (its chunk's shared bytes and summary, then a line of
    /// its prefixes and its entry), and lookups one after another wait for every one of them. Here
    /// each step is taken for every key before the next step of any: the lines a key's next step
    /// reads are requested at its current one, so they arrive while the other keys' steps run (as
    /// <c>Tree.FindMany</c> does for the B+tree's levels: docs/benchmarks.md, "Linearizable reads,
    /// session 18" and "session 27"). Reads only: under the read lock, as every lookup.
    /// </remarks>
    /// <exception cref="ArgumentException">The spans' lengths differ.</exception>
    public void TryGetMany(ReadOnlySpan<ReadOnlyMemory<byte>> keys, ReadOnlySpan<long> atMain, Span<bool> found, Span<Revision> modified)
    {
        int n = keys.Length;
        if (atMain.Length != n || found.Length != n || modified.Length != n)
        {
            throw new ArgumentException($"{n} keys need as many revisions to read at, found flags and revisions ({atMain.Length}, {found.Length}, {modified.Length}).");
        }

        found.Clear();
        modified.Clear();
        if (n == 0 || _chunks.Count == 0)
        {
            return;
        }

        // Per key: its chunk (-1: before every key, so absent), then its search range in that chunk
        // (lo > hi: not in the chunk, so absent), and its prefix after the chunk's shared bytes.
        var chunkOf = ArrayPool<int>.Shared.Rent(n);
        var bounds = ArrayPool<(int Low, int High, ulong Prefix)>.Shared.Rent(n);
        try
        {
            // Step 1: the chunk (the chunks' prefixes are one small array, searched at once), and
            // the lines of that chunk the next step reads requested.
            for (int i = 0; i < n; i++)
            {
                int chunkIndex = FindChunk(keys[i].Span);
                chunkOf[i] = chunkIndex;
                if (chunkIndex >= 0)
                {
                    _chunks[chunkIndex].PrefetchBound();
                }
            }

            // Step 2: the range the chunk's summary leaves, and the lines of it the search reads requested.
            for (int i = 0; i < n; i++)
            {
                if (chunkOf[i] < 0)
                {
                    continue;
                }

                var chunk = _chunks[chunkOf[i]];
                if (chunk.TryBound(keys[i].Span, out ulong prefix, out int lo, out int hi))
                {
                    bounds[i] = (lo, hi, prefix);
                    chunk.PrefetchSearch(lo, hi);
                }
                else
                {
                    bounds[i] = (1, 0, 0);
                }
            }

            // Step 3: the search and the key's revision at its read point.
            for (int i = 0; i < n; i++)
            {
                var (lo, hi, prefix) = bounds[i];
                if (chunkOf[i] < 0 || lo > hi)
                {
                    continue;
                }

                var chunk = _chunks[chunkOf[i]];
                int index = chunk.Search(keys[i].Span, prefix, lo, hi, out bool exact);
                if (exact)
                {
                    found[i] = chunk.TryGet(index, atMain[i], out modified[i], out _, out _);
                }
            }
        }
        finally
        {
            ArrayPool<(int Low, int High, ulong Prefix)>.Shared.Return(bounds);
            ArrayPool<int>.Shared.Return(chunkOf);
        }
    }

    /// <summary>
    /// Calls <paramref name="visitor"/> with the revision visible at <paramref name="atMain"/> of each
    /// key of a request's range that existed then, in key order, until it returns false: just
    /// <paramref name="key"/> when <paramref name="rangeEnd"/> is empty, every key &gt;= it when
    /// <paramref name="rangeEnd"/> is the byte 0, else the keys in [key, rangeEnd). The visitor must
    /// not change the index.
    /// </summary>
    public void Visit(ReadOnlySpan<byte> key, ReadOnlySpan<byte> rangeEnd, long atMain, Func<Revision, bool> visitor)
    {
        if (rangeEnd.IsEmpty)
        {
            if (TryGet(key, atMain, out var single, out _, out _))
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
                if (!toEnd && chunk.Compare(rangeEnd, index) <= 0)
                {
                    return;
                }

                if (chunk.TryGet(index, atMain, out var modified, out _, out _) && !visitor(modified))
                {
                    return;
                }
            }
        }
    }

    /// <summary>Every key, in order (for tests).</summary>
    public IEnumerable<byte[]> Keys()
    {
        foreach (var chunk in _chunks)
        {
            for (int i = 0; i < chunk.Count; i++)
            {
                yield return chunk.CopyKey(i);
            }
        }
    }

    /// <summary>The history of <paramref name="key"/> as a <see cref="KeyHistory"/> (a copy for a key held without one), or null when absent (for tests).</summary>
    public KeyHistory? HistoryOf(ReadOnlySpan<byte> key)
    {
        if (!Find(key, out var position))
        {
            return null;
        }

        var chunk = _chunks[position.Chunk];
        return chunk.HistoryAt(position.Index) ?? chunk.NewHistory(position.Index);
    }

    // ------------------------------------------------------------ writing (writer thread, write lock for changes)

    /// <summary>
    /// True when <paramref name="key"/> is in the index, with <paramref name="position"/> where it is;
    /// otherwise false with <paramref name="position"/> where <see cref="Add"/> puts it: one search
    /// for a key the writer looks up and then writes.
    /// </summary>
    public bool Find(ReadOnlySpan<byte> key, out Position position)
    {
        if (_chunks.Count == 0)
        {
            position = new Position(0, 0, _changeCount);
            return false;
        }

        // Keys written in order go after the last key: one comparison with it instead of two
        // binary searches.
        int lastChunk = _chunks.Count - 1;
        var last = _chunks[lastChunk];
        if (last.Compare(key, last.Count - 1) > 0)
        {
            position = new Position(lastChunk, last.Count, _changeCount);
            return false;
        }

        int chunkIndex = Math.Max(0, FindChunk(key));
        int index = _chunks[chunkIndex].LowerBound(key, out bool exact);
        position = new Position(chunkIndex, index, _changeCount);
        return exact;
    }

    /// <summary>As <see cref="TryGet(ReadOnlySpan{byte}, long, out Revision, out Revision, out long)"/> for the key <see cref="Find"/> found at <paramref name="position"/>.</summary>
    public bool TryGet(in Position position, long atMain, out Revision modified, out Revision created, out long version) =>
        At(position).TryGet(position.Index, atMain, out modified, out created, out version);

    /// <summary>
    /// Adds <paramref name="key"/>, which <see cref="Find"/> did not find, at the
    /// <paramref name="position"/> it returned, with its first put at <paramref name="revision"/>.
    /// </summary>
    /// <exception cref="InvariantViolationException">The index changed since <paramref name="position"/> was found.</exception>
    public void Add(in Position position, ReadOnlySpan<byte> key, Revision revision)
    {
        CheckCurrent(position);
        Insert(position, key, history: null, revision);
    }

    /// <summary>Records a put at <paramref name="revision"/> of the key <see cref="Find"/> found at <paramref name="position"/> (etcd's <c>keyIndex.put</c>).</summary>
    /// <exception cref="InvariantViolationException">The index changed since <paramref name="position"/> was found, or the revision is not after the key's last one.</exception>
    public void Put(in Position position, Revision revision)
    {
        CheckCurrent(position);
        if (!At(position).TryAddSecondPut(position.Index, revision))
        {
            HistoryAt(position).Put(revision);
        }
    }

    /// <summary>
    /// Ends the live generation of the key <see cref="Find"/> found at <paramref name="position"/> with
    /// a tombstone at <paramref name="revision"/>; false (and nothing changes) when the key is not live.
    /// </summary>
    /// <exception cref="InvariantViolationException">The index changed since <paramref name="position"/> was found.</exception>
    public bool Tombstone(in Position position, Revision revision)
    {
        CheckCurrent(position);

        // A key held without a history is live (its one put): it gets one to end the generation.
        return HistoryAt(position).Tombstone(revision);
    }

    /// <summary>
    /// One step of compaction at <paramref name="atMain"/> (etcd's <c>treeIndex.Compact</c>, cut in
    /// steps): compacts up to <paramref name="limit"/> keys from <paramref name="from"/> on, adding the
    /// revisions it keeps to <paramref name="available"/>, and removes the keys left with nothing.
    /// Returns the key to continue from, or null when this step reached the end.
    /// </summary>
    public byte[]? Compact(ReadOnlySpan<byte> from, int limit, long atMain, HashSet<Revision> available)
    {
        var emptied = new List<byte[]>();
        byte[]? lastSeen = null;
        int seen = 0;
        var (chunkIndex, index) = LowerBound(from);
        for (; chunkIndex < _chunks.Count && seen < limit; chunkIndex++, index = 0)
        {
            var chunk = _chunks[chunkIndex];
            for (; index < chunk.Count && seen < limit; index++, seen++)
            {
                if (seen == limit - 1)
                {
                    // The step's last key: where the next step continues (a copy: the chunk's bytes move).
                    lastSeen = chunk.CopyKey(index);
                }

                if (chunk.SecondAt(index) is { } second && second.Main <= atMain)
                {
                    // Two puts, the second at or below: the first goes, so the key's history is no
                    // longer what the chunk holds without an object (a generation created before its
                    // oldest revision): it gets one, compacted by etcd's rules as any other.
                    chunk.SetHistory(index, chunk.NewHistory(index)).Compact(atMain, available);
                }
                else if (chunk.HistoryAt(index) is { } history)
                {
                    history.Compact(atMain, available);
                    if (history.IsEmpty)
                    {
                        emptied.Add(history.Key);
                    }
                }
                else if (chunk.SingleAt(index).Main <= atMain)
                {
                    // A key's one put is its newest revision: kept.
                    available.Add(chunk.SingleAt(index));
                }
            }
        }

        foreach (var key in emptied)
        {
            Remove(key);
        }

        // The next key after the last one is that key followed by a zero byte.
        return seen < limit || lastSeen is null ? null : [.. lastSeen, 0];
    }

    /// <summary>What a compaction at <paramref name="atMain"/> would keep, over every key, changing nothing (etcd's <c>treeIndex.Keep</c>, for hashing).</summary>
    public void Keep(long atMain, HashSet<Revision> available)
    {
        foreach (var chunk in _chunks)
        {
            for (int i = 0; i < chunk.Count; i++)
            {
                if (chunk.SecondAt(i) is { } second && second.Main <= atMain)
                {
                    available.Add(second);
                }
                else if (chunk.HistoryAt(i) is { } history)
                {
                    history.Keep(atMain, available);
                }
                else if (chunk.SingleAt(i).Main <= atMain)
                {
                    available.Add(chunk.SingleAt(i));
                }
            }
        }
    }

    /// <summary>Removes <paramref name="key"/>, which must be in the index (compaction pruned its whole history).</summary>
    /// <exception cref="InvariantViolationException">The key is not in the index.</exception>
    public void Remove(ReadOnlySpan<byte> key)
    {
        if (!Find(key, out var position))
        {
            throw new InvariantViolationException($"MVCC key index: removing key {MvccText.Show(key)}, which is not in the index.");
        }

        var chunk = _chunks[position.Chunk];
        chunk.RemoveAt(position.Index);
        Count--;
        _changeCount++;
        if (chunk.Count == 0)
        {
            _chunks.RemoveAt(position.Chunk);
            _chunkPrefixes.RemoveAt(position.Chunk);
            FirstKeysChanged(changedChunk: -1);
        }
        else if (position.Index == 0)
        {
            FirstKeysChanged(position.Chunk);
        }
    }

    /// <summary>
    /// Fills an empty index with <paramref name="histories"/> (distinct keys, any order) at once, as
    /// <see cref="Load(LoadedKeys)"/> (for tests: the open rebuilds into <see cref="LoadedKeys"/>).
    /// </summary>
    /// <exception cref="InvariantViolationException">The index is not empty, a key comes twice, or a history is empty.</exception>
    public void Load(ICollection<KeyHistory> histories)
    {
        var keys = new LoadedKeys(histories.Count, keyBytesEach: 16);
        foreach (var history in histories)
        {
            keys.SetHistory(keys.Add(history.Key), history);
        }

        Load(keys);
    }

    /// <summary>
    /// Fills an empty index with <paramref name="keys"/> (distinct, any order) at once: one sort
    /// instead of an insert per key, for the rebuild at open. A key's history is kept as its one put,
    /// without an object, when it is one (<see cref="LoadedKeys.SingleAt"/>, or a history that is
    /// one put); other histories are taken as they are.
    /// </summary>
    /// <exception cref="InvariantViolationException">The index is not empty, a key comes twice, or a history is empty.</exception>
    public void Load(LoadedKeys keys)
    {
        if (Count != 0)
        {
            throw new InvariantViolationException("MVCC key index: bulk load into a non-empty index.");
        }

        int count = keys.Count;

        // Sorted by prefix with the runtime's sort of primitive keys (no comparer call per
        // comparison), then each run of equal prefixes by its whole keys.
        var prefixes = new ulong[count];
        var order = new int[count];
        for (int i = 0; i < count; i++)
        {
            if (keys.HistoryAt(i) is { IsEmpty: true })
            {
                throw new InvariantViolationException($"MVCC key index: bulk load of key {MvccText.Show(keys.KeyAt(i))} with no history.");
            }

            prefixes[i] = Prefix(keys.KeyAt(i));
            order[i] = i;
        }

        Array.Sort(prefixes, order);
        var byKey = new KeyOrder(keys);
        for (int start = 0; start < count;)
        {
            int end = start + 1;
            while (end < count && prefixes[end] == prefixes[start])
            {
                end++;
            }

            if (end - start > 1)
            {
                Array.Sort(order, start, end - start, byKey);
            }

            start = end;
        }

        const int FillCount = MaxChunkCount * 3 / 4;
        for (int start = 0; start < count; start += FillCount)
        {
            int end = Math.Min(count, start + FillCount);

            // Sorted, so every key of the chunk shares what its first and last keys share, and the
            // chunk keeps only the bytes after those (and of those, only the ones past each prefix).
            int shared = keys.KeyAt(order[start]).CommonPrefixLength(keys.KeyAt(order[end - 1]));
            int tailBytes = 0;
            for (int i = start; i < end; i++)
            {
                tailBytes += Math.Max(0, keys.KeyAt(order[i]).Length - shared - PrefixBytes);
            }

            var chunk = new Chunk(tailBytes, sharedLengthAtMost: shared);
            for (int i = start; i < end; i++)
            {
                int k = order[i];
                var key = keys.KeyAt(k);
                if (i > 0 && Compare(key, prefixes[i], prefixes[i - 1], keys.KeyAt(order[i - 1])) <= 0)
                {
                    throw new InvariantViolationException($"MVCC key index: bulk load of key {MvccText.Show(key)} twice.");
                }

                var history = keys.HistoryAt(k);
                var revision = keys.SingleAt(k);
                Revision? second = null;
                if (history is not null && history.IsSinglePut(out revision))
                {
                    history = null;
                }
                else if (history is not null && history.IsTwoPuts(out revision, out var secondPut))
                {
                    // Held as the chunk holds a key written twice (its one put and its second put, no object).
                    history = null;
                    second = secondPut;
                }

                chunk.Insert(chunk.Count, key, history, revision, second);
            }

            _chunks.Add(chunk);
            _chunkPrefixes.Add(0);
        }

        Count = count;
        _changeCount++;
        RecomputeChunkPrefixes();
    }

    private void Insert(in Position position, ReadOnlySpan<byte> key, KeyHistory? history, Revision revision)
    {
        _changeCount++;
        Count++;
        if (_chunks.Count == 0)
        {
            var first = new Chunk(key.Length);
            first.Insert(0, key, history, revision);
            _chunks.Add(first);
            _chunkPrefixes.Add(0);
            FirstKeysChanged(0);
            return;
        }

        int chunkIndex = position.Chunk;
        int index = position.Index;
        var chunk = _chunks[chunkIndex];
        if (index == chunk.Count && chunk.Count == MaxChunkCount && chunkIndex == _chunks.Count - 1)
        {
            // Appending past the last key (keys written in order): a new last chunk, so the full
            // ones stay full instead of being split in halves that never fill again.
            // Sized for a full chunk of keys like this one after what the last chunk's keys share
            // (capped for long keys): appends rarely rebuild it. Only a rest's bytes past its
            // prefix are copied (PrefixBytes), so keys whose rests end within it need no key
            // array at all: none is made (a tail that comes later grows one, StoreTail).
            int rest = key.Length - key.CommonPrefixLength(chunk.Shared);
            var next = new Chunk(Math.Clamp(rest - PrefixBytes, 0, 32) * MaxChunkCount);
            next.Insert(0, key, history, revision);
            _chunks.Add(next);
            _chunkPrefixes.Add(0);
            FirstKeysChanged(_chunks.Count - 1);
            return;
        }

        chunk.Insert(index, key, history, revision);
        if (chunk.Count > MaxChunkCount)
        {
            var upper = chunk.SplitUpperHalf();
            _chunks.Insert(chunkIndex + 1, upper);
            _chunkPrefixes.Insert(chunkIndex + 1, 0);
            FirstKeysChanged(chunkIndex + 1);
        }

        if (index == 0)
        {
            FirstKeysChanged(chunkIndex);
        }
    }

    /// <summary>
    /// Keeps <see cref="_chunkPrefixes"/> true after the first key of chunk
    /// <paramref name="changedChunk"/> changed (or a chunk was removed: -1): only its entry, unless
    /// the bytes all first keys share changed, then every entry (the first or last chunk's first key
    /// changed: rare once the index has a few chunks).
    /// </summary>
    private void FirstKeysChanged(int changedChunk)
    {
        if (_chunks.Count == 0)
        {
            _chunkShared = [];
            return;
        }

        // Both first keys put together on the stack when short (every insert at a chunk's index 0
        // calls this: no allocation for them), copied when long.
        Span<byte> firstBuffer = stackalloc byte[128];
        Span<byte> lastBuffer = stackalloc byte[128];
        var firstKey = _chunks[0].FirstKey(firstBuffer);
        var lastKey = _chunks[^1].FirstKey(lastBuffer);
        int sharedLength = firstKey.CommonPrefixLength(lastKey);
        if (sharedLength != _chunkShared.Length || firstKey.CommonPrefixLength(_chunkShared) != sharedLength)
        {
            RecomputeChunkPrefixes(sharedLength);
        }
        else if (changedChunk >= 0)
        {
            _chunkPrefixes[changedChunk] = _chunks[changedChunk].PrefixOfKeyAfter(0, sharedLength);
        }
    }

    private void RecomputeChunkPrefixes()
    {
        if (_chunks.Count == 0)
        {
            _chunkShared = [];
            return;
        }

        RecomputeChunkPrefixes(_chunks[0].CopyKey(0).AsSpan().CommonPrefixLength(_chunks[^1].CopyKey(0)));
    }

    /// <summary>Every chunk's prefix entry again, from after the <paramref name="sharedLength"/> bytes all first keys share (the first and last chunk's first keys, as keys are ordered).</summary>
    private void RecomputeChunkPrefixes(int sharedLength)
    {
        var shared = _chunks[0].CopyKey(0)[..sharedLength];
        for (int i = 0; i < _chunks.Count; i++)
        {
            _chunkPrefixes[i] = _chunks[i].PrefixOfKeyAfter(0, sharedLength);
        }

        _chunkShared = shared;
    }

    private void CheckCurrent(in Position position)
    {
        if (position.ChangeCount != _changeCount)
        {
            throw new InvariantViolationException("MVCC key index: a change at a position found before the index changed (keys added or removed since).");
        }
    }

    private Chunk At(in Position position)
    {
        var chunk = _chunks[position.Chunk];
        if (position.Index >= chunk.Count)
        {
            throw new InvariantViolationException($"MVCC key index: position {position.Index} of a chunk of {chunk.Count} keys (a key that was not found).");
        }

        return chunk;
    }

    /// <summary>The key's history object at <paramref name="position"/>, made (from its one put) when the key had none.</summary>
    private KeyHistory HistoryAt(in Position position)
    {
        var chunk = At(position);
        return chunk.HistoryAt(position.Index) ?? chunk.SetHistory(position.Index, chunk.NewHistory(position.Index));
    }

    /// <summary>Byte-wise order of whole keys, given by their slots (for keys with equal prefixes).</summary>
    private sealed class KeyOrder(LoadedKeys keys) : IComparer<int>
    {
        public int Compare(int x, int y) => keys.KeyAt(x).SequenceCompareTo(keys.KeyAt(y));
    }

    private static int Compare(ReadOnlySpan<byte> key, ulong prefix, ulong otherPrefix, ReadOnlySpan<byte> other) =>
        prefix != otherPrefix ? (prefix < otherPrefix ? -1 : 1) : key.SequenceCompareTo(other);

    /// <summary>The chunk whose first key is the last one &lt;= <paramref name="key"/>, or -1 when key is before every key.</summary>
    private int FindChunk(ReadOnlySpan<byte> key)
    {
        var shared = _chunkShared;
        int order = CompareToShared(key, shared);
        if (order != 0)
        {
            return order < 0 ? -1 : _chunks.Count - 1;
        }

        ulong prefix = Prefix(key[shared.Length..]);
        int lo = 0;
        int hi = _chunks.Count - 1;
        int found = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            ulong midPrefix = _chunkPrefixes[mid];

            // The first key is loaded only on a prefix tie (a cache miss otherwise saved per step).
            order = prefix != midPrefix ? (prefix < midPrefix ? -1 : 1) : _chunks[mid].Compare(key, 0);
            if (order >= 0)
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

        var chunk = _chunks[chunkIndex];
        int index = chunk.LowerBound(key, out _);
        return index < chunk.Count ? (chunkIndex, index) : (chunkIndex + 1, 0);
    }

    /// <summary>Where a key is (or goes), valid while the index has had no add or removal since (<see cref="ChangeCount"/>).</summary>
    internal readonly record struct Position(int Chunk, int Index, long ChangeCount);

    /// <summary>
    /// A run of consecutive keys: each key's prefix after the bytes the chunk's keys share (in an
    /// array of their own, for the searches), and its <see cref="Entry"/>: where the rest of its bytes
    /// are in <see cref="KeyBytes"/> and its one put, unless <see cref="_histories"/> holds a
    /// <see cref="KeyHistory"/> for it.
    /// </summary>
    /// <remarks>
    /// <para>Key bytes: a key's rest (its bytes after <see cref="_shared"/>) is its prefix's bytes
    /// (the first <see cref="PrefixBytes"/>, already in <see cref="_prefixes"/>), then its tail,
    /// the bytes past those, which alone are copied into the chunk's one array: a new key
    /// allocates no object of its own (an array per key cost an allocation and, in the young
    /// generations, a copy per collection; on the pinned object heap, an allocation under the GC's
    /// lock), the bytes a chunk's keys share are held once, and the bytes its prefix holds are not
    /// held twice (in-order 16-byte keys share 6–7 bytes in a chunk, so their tails are 1–2 bytes
    /// where their rests were 9–10; the index's growth is fresh memory, which costs the writer by
    /// the byte: docs/benchmarks.md, "MVCC in-order puts, session 18" and "session 22"). The array
    /// has room for more; when a tail does not fit, it is rebuilt (twice the live bytes, removed
    /// keys' bytes dropped). It changes only under the index's write lock, so a reader's span of a
    /// tail (<see cref="TailAt"/>) is good while it holds the read lock; nothing keeps one past
    /// that, and a whole key is put together from its three parts (<see cref="CopyKey"/>).</para>
    /// <para>Shared bytes: a key that does not begin with <see cref="_shared"/> shortens it to what
    /// they have in common (the bytes given up are put back before every rest, and every prefix and
    /// tail is taken again, at most once per byte given up); a split may lengthen it (the lower
    /// half's rests taken again without those bytes); a removal never needs it shorter. A search
    /// compares a key with <see cref="_shared"/> once, then numbers: only keys whose next 8 bytes
    /// tie are compared byte by byte, and then only their tails, and not even those when either
    /// ends within those 8 bytes (then equal prefixes order as the lengths do).</para>
    /// <para>Invariant: the first <see cref="Count"/> entries are used, and their tails are within
    /// the first <see cref="_keyBytesUsed"/> of <see cref="KeyBytes"/>; every key is
    /// <see cref="_shared"/> then its rest, <see cref="_prefixes"/> holds each rest's <see cref="Prefix"/>
    /// and <see cref="KeyBytes"/> its bytes past the first <see cref="PrefixBytes"/>;
    /// <see cref="_prefixes"/>, <see cref="_entries"/> and <see cref="KeyBytes"/> are pinned arrays
    /// without references (entries past <see cref="Count"/> are stale, never read); never empty in
    /// the index.</para>
    /// </remarks>
    private sealed class Chunk
    {
        public int Count;

        /// <summary>Each key's <see cref="Prefix"/> after <see cref="_shared"/>.</summary>
        private readonly ulong[] _prefixes = GC.AllocateUninitializedArray<ulong>(MaxChunkCount + 1, pinned: true);

        /// <summary>
        /// Every <see cref="SummaryStride"/>th prefix (<c>_summary[j] == _prefixes[j * SummaryStride]</c>
        /// for <c>j * SummaryStride &lt; Count</c>), then <see cref="ulong.MaxValue"/> to the end: a lookup
        /// compares its prefix with all of them at once (their few cache lines requested together),
        /// which leaves one line of <see cref="_prefixes"/> to search, instead of a binary search
        /// whose every step waits for a line of its own (docs/benchmarks.md, "Linearizable reads,
        /// session 17"). Kept current by every change of <see cref="_prefixes"/> or <see cref="Count"/>.
        /// </summary>
        private readonly ulong[] _summary = NewSummary();

        /// <summary>Each key's entry, parallel to <see cref="_prefixes"/>.</summary>
        private readonly Entry[] _entries = GC.AllocateUninitializedArray<Entry>(MaxChunkCount + 1, pinned: true);

        /// <summary>
        /// Each key's history object, parallel to <see cref="_entries"/>, or null for a key held as its
        /// one put; the array itself is null until a key of the chunk gets one (a chunk of keys written
        /// once has none). Invariant: entries at and past <see cref="Count"/> are null.
        /// </summary>
        private KeyHistory?[]? _histories;

        /// <summary>
        /// Each key's second put (<see cref="Entry.Pack"/>), 0 for none, parallel to <see cref="_entries"/>;
        /// null until a key of the chunk is written a second time. A key written twice since it was
        /// created (and not deleted) is its entry's one put, this put (version 2, created by the first)
        /// and no <see cref="KeyHistory"/>: the put that rewrites a key writes a number into this pinned
        /// array instead of making a history object, its key's copy and a revisions array (~230 B that
        /// lived until the store closed, each reached by the collector through the old chunk's
        /// <see cref="_histories"/> and copied twice: nearly all of what a collection kept in the live
        /// watch row once the queued puts' requests were gone, docs/benchmarks.md, "Watches, session 30").
        /// Invariant: a slot is nonzero only for a key without a history object whose entry holds its
        /// one put, and the second put is after it; slots at and past <see cref="Count"/> are 0.
        /// </summary>
        private ulong[]? _seconds;

        /// <summary>The most bytes the first key sets <see cref="_shared"/> to (a bulk load or split knows what its keys share).</summary>
        private readonly int _sharedLengthAtMost;

        /// <summary>Bytes of <see cref="KeyBytes"/> taken (by live keys' tails and by those of keys removed since it was rebuilt).</summary>
        private int _keyBytesUsed;

        /// <summary>Bytes every key of the chunk begins with (a copy; set by the first key).</summary>
        private byte[] _shared = [];

        /// <summary>A chunk whose key array has room for <paramref name="keyBytesCapacity"/> bytes of tails (more are made room for as they come).</summary>
        public Chunk(int keyBytesCapacity, int sharedLengthAtMost = int.MaxValue)
        {
            // No bytes: the shared empty array, not an allocation (its address is never taken).
            KeyBytes = keyBytesCapacity == 0 ? [] : GC.AllocateUninitializedArray<byte>(keyBytesCapacity, pinned: true);
            _sharedLengthAtMost = sharedLengthAtMost;
        }

        /// <summary>Every key's tail: its rest's bytes past the <see cref="PrefixBytes"/> its prefix holds.</summary>
        public byte[] KeyBytes { get; private set; }

        /// <summary>Bytes every key of the chunk begins with.</summary>
        public ReadOnlySpan<byte> Shared => _shared;

        /// <summary>A copy of key <paramref name="index"/>'s bytes (its chunk's shared bytes, then its rest).</summary>
        public byte[] CopyKey(int index)
        {
            var key = new byte[_shared.Length + _entries[index].RestLength];
            _shared.CopyTo(key, 0);
            WriteRest(index, KeyBytes, key.AsSpan(_shared.Length));
            return key;
        }

        /// <summary>The first key's bytes, put together in <paramref name="buffer"/> when they fit, else a copy: valid until the chunk next changes.</summary>
        public ReadOnlySpan<byte> FirstKey(Span<byte> buffer)
        {
            int length = _shared.Length + _entries[0].RestLength;
            if (length > buffer.Length)
            {
                return CopyKey(0);
            }

            _shared.CopyTo(buffer);
            WriteRest(0, KeyBytes, buffer[_shared.Length..]);
            return buffer[..length];
        }

        /// <summary>The <see cref="Prefix"/> of key <paramref name="index"/> after its first <paramref name="skipped"/> bytes.</summary>
        public ulong PrefixOfKeyAfter(int index, int skipped)
        {
            if (skipped == _shared.Length)
            {
                return _prefixes[index];
            }

            Span<byte> head = stackalloc byte[PrefixBytes];
            int taken = 0;
            for (int i = skipped; i < _shared.Length && taken < PrefixBytes; i++)
            {
                head[taken++] = _shared[i];
            }

            int restLength = _entries[index].RestLength;
            for (int i = Math.Max(0, skipped - _shared.Length); i < restLength && taken < PrefixBytes; i++)
            {
                head[taken++] = RestByte(index, i);
            }

            return Prefix(head[..taken]);
        }

        /// <summary>Byte <paramref name="offset"/> of key <paramref name="index"/>'s rest: from its prefix, or past that from its tail.</summary>
        private byte RestByte(int index, int offset) =>
            offset < PrefixBytes
                ? (byte)(_prefixes[index] >> (56 - (8 * offset)))
                : KeyBytes[_entries[index].TailStart + offset - PrefixBytes];

        /// <summary>
        /// The bytes of key <paramref name="index"/>'s rest past its prefix (the chunk stores only
        /// those): valid until the chunk next changes.
        /// </summary>
        private ReadOnlySpan<byte> TailAt(int index)
        {
            ref readonly var entry = ref _entries[index];
            return new(KeyBytes, entry.TailStart, entry.TailLength);
        }

        /// <summary>
        /// Writes key <paramref name="index"/>'s rest (its prefix's bytes, then its tail read from
        /// <paramref name="tails"/>) to the start of <paramref name="destination"/>; returns its length.
        /// Reads only the key's prefix and entry, so a rebuild can write them right after.
        /// </summary>
        private int WriteRest(int index, byte[] tails, Span<byte> destination)
        {
            ref readonly var entry = ref _entries[index];
            int fromPrefix = Math.Min(PrefixBytes, entry.RestLength);
            Span<byte> head = stackalloc byte[PrefixBytes];
            BinaryPrimitives.WriteUInt64BigEndian(head, _prefixes[index]);
            head[..fromPrefix].CopyTo(destination);
            tails.AsSpan(entry.TailStart, entry.TailLength).CopyTo(destination[fromPrefix..]);
            return entry.RestLength;
        }

        /// <summary>How many bytes the rests of keys <paramref name="i"/> and <paramref name="j"/> begin with in common.</summary>
        private int CommonRestLength(int i, int j)
        {
            ulong a = _prefixes[i];
            ulong b = _prefixes[j];
            int shorter = Math.Min(_entries[i].RestLength, _entries[j].RestLength);
            if (a != b)
            {
                return Math.Min(shorter, BitOperations.LeadingZeroCount(a ^ b) / 8);
            }

            // Equal padded prefixes: a rest that ends within them is the other's first bytes.
            return shorter <= PrefixBytes ? shorter : PrefixBytes + TailAt(i).CommonPrefixLength(TailAt(j));
        }

        /// <summary>Key <paramref name="index"/>'s history object, or null when its history is its one put (<see cref="SingleAt"/>).</summary>
        public KeyHistory? HistoryAt(int index) => _histories?[index];

        /// <summary>The one put of key <paramref name="index"/>, which has no history object.</summary>
        public Revision SingleAt(int index) => _entries[index].Single;

        /// <summary>The second put of key <paramref name="index"/> when it is held without a history object (<see cref="_seconds"/>), else null.</summary>
        public Revision? SecondAt(int index) => _seconds is { } seconds && seconds[index] != 0 ? Entry.Unpack(seconds[index]) : null;

        /// <summary>
        /// Records <paramref name="revision"/> as key <paramref name="index"/>'s second put when the key
        /// is held as its one put and the revision fits an entry's word; false (nothing changed) otherwise,
        /// and the caller records it in the key's history object.
        /// </summary>
        /// <exception cref="InvariantViolationException">The revision is not after the key's one put.</exception>
        public bool TryAddSecondPut(int index, Revision revision)
        {
            if (_histories?[index] is not null || (_seconds is { } seconds && seconds[index] != 0) || !Entry.Fits(revision))
            {
                return false;
            }

            var single = _entries[index].Single;
            if (revision <= single)
            {
                throw new InvariantViolationException($"MVCC key index: put at {revision} is not after the key's last revision {single}.");
            }

            (_seconds ??= GC.AllocateArray<ulong>(MaxChunkCount + 1, pinned: true))[index] = Entry.Pack(revision);
            return true;
        }

        /// <summary>
        /// Gives key <paramref name="index"/>, held as its one put (and its second, if any),
        /// <paramref name="history"/> (equal to it, or later); returns it. The key's second-put slot is
        /// emptied: the history holds that put now.
        /// </summary>
        public KeyHistory SetHistory(int index, KeyHistory history)
        {
            if (_seconds is { } seconds)
            {
                seconds[index] = 0;
            }

            return (_histories ??= new KeyHistory?[MaxChunkCount + 1])[index] = history;
        }

        public bool TryGet(int index, long atMain, out Revision modified, out Revision created, out long version)
        {
            if (_histories?[index] is { } history)
            {
                return history.TryGet(atMain, out modified, out created, out version);
            }

            var single = _entries[index].Single;
            if (SecondAt(index) is { } second && second.Main <= atMain)
            {
                modified = second;
                created = single;
                version = 2;
                return true;
            }

            if (single.Main <= atMain)
            {
                modified = single;
                created = single;
                version = 1;
                return true;
            }

            modified = default;
            created = default;
            version = 0;
            return false;
        }

        /// <summary>A history object equal to the entry's one put and its second put, if any.</summary>
        public KeyHistory NewHistory(int index)
        {
            var history = new KeyHistory(CopyKey(index));
            history.Put(_entries[index].Single);
            if (SecondAt(index) is { } second)
            {
                history.Put(second);
            }

            return history;
        }

        public void Insert(int index, ReadOnlySpan<byte> key, KeyHistory? history, Revision single, Revision? second = null)
        {
            if (Count == 0)
            {
                _shared = key[..Math.Min(key.Length, _sharedLengthAtMost)].ToArray();
            }
            else
            {
                int common = key.CommonPrefixLength(_shared);
                if (common < _shared.Length)
                {
                    ShareOnly(common);
                }
            }

            // A key whose one put or rest does not fit an entry's word gets a history object.
            var rest = key[_shared.Length..];
            if (history is null && (!Entry.Fits(single) || (second is { } late && !Entry.Fits(late)) || rest.Length >= Entry.LongRestLength))
            {
                history = new KeyHistory(key.ToArray());
                history.Put(single);
                if (second is { } put)
                {
                    history.Put(put);
                }

                second = null;
            }

            if (history is not null && second is not null)
            {
                throw new InvariantViolationException("MVCC key index: a key inserted with both a history object and a second put.");
            }

            ulong prefix = Prefix(rest);
            int start = StoreTail(rest.Length > PrefixBytes ? rest[PrefixBytes..] : []);
            int moved = Count - index;
            if (moved > 0)
            {
                Array.Copy(_prefixes, index, _prefixes, index + 1, moved);
                Array.Copy(_entries, index, _entries, index + 1, moved);
                if (_histories is { } histories)
                {
                    Array.Copy(histories, index, histories, index + 1, moved);
                    histories[index] = null;
                }

                if (_seconds is { } seconds)
                {
                    Array.Copy(seconds, index, seconds, index + 1, moved);
                    seconds[index] = 0;
                }
            }

            _prefixes[index] = prefix;
            _entries[index] = history is null ? Entry.OfOnePut(start, rest.Length, single) : Entry.WithHistory(start, rest.Length);
            Count++;
            RefreshSummary(index, Count - 1);
            if (history is not null)
            {
                SetHistory(index, history);
            }
            else if (second is { } put && !TryAddSecondPut(index, put))
            {
                throw new InvariantViolationException($"MVCC key index: a key's second put {put} after {single} could not be held in its chunk.");
            }
        }

        public void RemoveAt(int index)
        {
            int moved = Count - index - 1;
            if (moved > 0)
            {
                Array.Copy(_prefixes, index + 1, _prefixes, index, moved);
                Array.Copy(_entries, index + 1, _entries, index, moved);
                if (_histories is { } histories)
                {
                    Array.Copy(histories, index + 1, histories, index, moved);
                }

                if (_seconds is { } seconds)
                {
                    Array.Copy(seconds, index + 1, seconds, index, moved);
                }
            }

            Count--;
            RefreshSummary(index, Count + 1);
            if (_histories is { } left)
            {
                left[Count] = null;
            }

            if (_seconds is { } secondsLeft)
            {
                secondsLeft[Count] = 0;
            }
        }

        public Chunk SplitUpperHalf()
        {
            int half = Count / 2;
            int moved = Count - half;
            int tailBytes = 0;
            int longestRest = 0;
            for (int i = half; i < Count; i++)
            {
                tailBytes += _entries[i].TailLength;
                longestRest = Math.Max(longestRest, _entries[i].RestLength);
            }

            // Each half shares at least what the whole did, often more (sorted: what its first and last keys share).
            int upperShared = _shared.Length + CommonRestLength(half, Count - 1);
            var upper = new Chunk(tailBytes * 2, sharedLengthAtMost: upperShared);

            // Each moved key whole (the shared bytes, then its rest) in one buffer, as Insert takes keys.
            var whole = new byte[_shared.Length + longestRest];
            _shared.CopyTo(whole, 0);
            for (int i = 0; i < moved; i++)
            {
                int restLength = WriteRest(half + i, KeyBytes, whole.AsSpan(_shared.Length));
                var history = HistoryAt(half + i);
                upper.Insert(i, whole.AsSpan(0, _shared.Length + restLength), history, history is null ? _entries[half + i].Single : default, SecondAt(half + i));
            }

            if (_histories is { } histories)
            {
                Array.Clear(histories, half, moved);
            }

            if (_seconds is { } seconds)
            {
                Array.Clear(seconds, half, moved);
            }

            int before = Count;
            Count = half;
            RefreshSummary(half, before);
            int gained = CommonRestLength(0, half - 1);
            if (gained > 0)
            {
                // The lower half shares more: those bytes leave each rest (its prefix and tail taken again).
                var gainedBytes = CopyKey(0).AsSpan(_shared.Length, gained).ToArray();
                Rebuild(lead: [], dropped: gained, extraBytes: 0, inPlace: true);
                _shared = [.. _shared, .. gainedBytes];
            }

            return upper;
        }

        /// <summary>
        /// How <paramref name="key"/> orders against key <paramref name="index"/> (negative: before it),
        /// comparing numbers first, as the searches do.
        /// </summary>
        public int Compare(ReadOnlySpan<byte> key, int index)
        {
            var shared = _shared;
            int order = CompareToShared(key, shared);
            return order != 0 ? order : CompareAfterShared(key, Prefix(key[shared.Length..]), index);
        }

        /// <summary>
        /// The position of the first key &gt;= <paramref name="key"/> in this chunk, and whether that
        /// key is <paramref name="key"/>.
        /// </summary>
        public int LowerBound(ReadOnlySpan<byte> key, out bool exact)
        {
            if (!TryBound(key, out ulong prefix, out int lo, out int hi))
            {
                // Before or after every key of the chunk (lo is where it goes).
                exact = false;
                return lo;
            }

            if (lo < hi && hi - lo <= SummaryStride && Sse.IsSupported)
            {
                // The entries the search can end on (a lookup then reads its entry: the key's
                // length on a tie, its revision after) requested now, with the one line of prefixes.
                PrefetchEntries(lo, hi);
            }

            return Search(key, prefix, lo, hi, out exact);
        }

        /// <summary>
        /// The first step of <see cref="LowerBound"/>: false, with <paramref name="lo"/> the lower
        /// bound (0 or <see cref="Count"/>), when <paramref name="key"/> does not begin with the bytes
        /// the chunk's keys share; else true with its prefix after them and the range
        /// [<paramref name="lo"/>, <paramref name="hi"/>) the summary leaves to <see cref="Search"/>.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public bool TryBound(ReadOnlySpan<byte> key, out ulong prefix, out int lo, out int hi)
        {
            var shared = _shared;
            int order = CompareToShared(key, shared);
            if (order != 0)
            {
                prefix = 0;
                lo = hi = order < 0 ? 0 : Count;
                return false;
            }

            prefix = Prefix(key[shared.Length..]);
            (lo, hi) = SummaryBounds(prefix);
            return true;
        }

        /// <summary>
        /// The last step of <see cref="LowerBound"/>: the lower bound of <paramref name="key"/> (of
        /// prefix <paramref name="prefix"/>, <see cref="TryBound"/> true) in [<paramref name="lo"/>,
        /// <paramref name="hi"/>), and whether that key is <paramref name="key"/>.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int Search(ReadOnlySpan<byte> key, ulong prefix, int lo, int hi, out bool exact)
        {
            exact = false;
            while (lo < hi)
            {
                int mid = (lo + hi) >>> 1;
                int order = CompareAfterShared(key, prefix, mid);
                if (order > 0)
                {
                    lo = mid + 1;
                }
                else
                {
                    // Keys are distinct: an equal key is the lower bound the search ends on.
                    exact |= order == 0;
                    hi = mid;
                }
            }

            return lo;
        }

        /// <summary>
        /// How <paramref name="key"/>, which begins with <see cref="_shared"/> and whose prefix after it
        /// is <paramref name="prefix"/>, orders against key <paramref name="index"/>. The key's bytes are
        /// loaded only on a prefix tie of keys longer than 8 bytes after the shared ones.
        /// </summary>
        private int CompareAfterShared(ReadOnlySpan<byte> key, ulong prefix, int index)
        {
            ulong other = _prefixes[index];
            if (prefix != other)
            {
                return prefix < other ? -1 : 1;
            }

            // Equal padded prefixes where a rest ends within them: that rest is the other's first
            // bytes (its padding zeros are the other's bytes there), so the shorter comes first.
            // Otherwise both go on past their prefixes, which are equal: their tails decide.
            int otherRest = _entries[index].RestLength;
            int keyRest = key.Length - _shared.Length;
            return keyRest <= PrefixBytes || otherRest <= PrefixBytes
                ? keyRest.CompareTo(otherRest)
                : key[(_shared.Length + PrefixBytes)..].SequenceCompareTo(TailAt(index));
        }

        /// <summary>
        /// Shortens <see cref="_shared"/> to its first <paramref name="length"/> bytes: the bytes given
        /// up are put back before every stored rest, and every prefix and tail is taken again (at most
        /// once per byte given up; in a chunk of keys written in order, while it holds its first few keys).
        /// </summary>
        private void ShareOnly(int length)
        {
            Rebuild(lead: _shared.AsSpan(length), dropped: 0, extraBytes: 0, inPlace: true);
            _shared = _shared[..length];
        }

        /// <summary>
        /// Makes every key's rest <paramref name="lead"/> then its rest without its first
        /// <paramref name="dropped"/> bytes (shared bytes given up, or taken: one of the two is
        /// empty), takes every prefix again and writes the tails one after another in key order
        /// (removed keys' bytes dropped): in place when <paramref name="inPlace"/> and they fit
        /// (the array was sized for the chunk's keys: a new one would be fresh memory again), else
        /// into a new array of twice their bytes and <paramref name="extraBytes"/>.
        /// </summary>
        private void Rebuild(ReadOnlySpan<byte> lead, int dropped, int extraBytes, bool inPlace)
        {
            if (!lead.IsEmpty && dropped != 0)
            {
                throw new InvariantViolationException("MVCC key index: a chunk's rests both lengthened and shortened in one rebuild.");
            }

            int tails = 0;
            int longestRest = 0;
            for (int i = 0; i < Count; i++)
            {
                int restLength = _entries[i].RestLength;
                tails += Math.Max(0, lead.Length + restLength - dropped - PrefixBytes);
                longestRest = Math.Max(longestRest, restLength);
                if (lead.Length + restLength - dropped >= Entry.LongRestLength && _histories?[i] is null)
                {
                    // Its rest's length will take the word its one put is in: the put moves to a history object first.
                    SetHistory(i, NewHistory(i));
                }
            }

            // In place from a copy of what is there (a rest is read whole before its tail is written).
            byte[]? copy = null;
            byte[] source = KeyBytes;
            byte[] target = KeyBytes;
            if (inPlace && tails + extraBytes <= KeyBytes.Length)
            {
                copy = ArrayPool<byte>.Shared.Rent(Math.Max(1, _keyBytesUsed));
                KeyBytes.AsSpan(0, _keyBytesUsed).CopyTo(copy);
                source = copy;
            }
            else
            {
                target = GC.AllocateUninitializedArray<byte>(Math.Max(256, (tails + extraBytes) * 2), pinned: true);
            }

            var restBuffer = ArrayPool<byte>.Shared.Rent(lead.Length + longestRest);
            lead.CopyTo(restBuffer);
            int used = 0;
            for (int i = 0; i < Count; i++)
            {
                int restLength = WriteRest(i, source, restBuffer.AsSpan(lead.Length));
                var rest = restBuffer.AsSpan(dropped, lead.Length + restLength - dropped);
                var tail = rest.Length > PrefixBytes ? rest[PrefixBytes..] : [];
                tail.CopyTo(target.AsSpan(used));
                _prefixes[i] = Prefix(rest);
                _entries[i].TailStart = used;
                _entries[i].RestLength = rest.Length;
                used += tail.Length;
            }

            ArrayPool<byte>.Shared.Return(restBuffer);
            if (copy is not null)
            {
                ArrayPool<byte>.Shared.Return(copy);
            }

            KeyBytes = target;
            _keyBytesUsed = used;
            RefreshSummary(0, Count);
        }

        /// <summary>
        /// Requests the lines <see cref="TryBound"/> reads (the shared bytes and the sampled part
        /// of the summary) without waiting for them: the first step of a lookup of
        /// <see cref="KeyIndex.TryGetMany"/>, whose later steps find them arrived.
        /// </summary>
        public unsafe void PrefetchBound()
        {
            if (!Sse.IsSupported)
            {
                return;
            }

            // _summary is pinned; _shared is not (the hint's address may be stale after a
            // collection moves it: a wasted hint, never a fault).
            var shared = _shared;
            if (shared.Length > 0)
            {
                Sse.Prefetch0(Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(shared)));
            }

            byte* summary = (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_summary));
            int sampled = (Count + SummaryStride - 1) / SummaryStride;
            for (int line = 0; line < sampled * sizeof(ulong); line += 64)
            {
                Sse.Prefetch0(summary + line);
            }
        }

        /// <summary>
        /// Requests the lines <see cref="Search"/> and <see cref="TryGet"/> read for a key bounded to
        /// [<paramref name="lo"/>, <paramref name="hi"/>) (its prefixes, entries and history slots)
        /// without waiting for them: the second step of a lookup of <see cref="KeyIndex.TryGetMany"/>.
        /// </summary>
        public unsafe void PrefetchSearch(int lo, int hi)
        {
            if (lo >= hi || !Sse.IsSupported)
            {
                return;
            }

            // A wide range (prefixes tied with sampled ones) is searched in more steps: its middle,
            // where the search starts, and the rest as the first lines below show.
            int last = Math.Min(hi - 1, lo + SummaryStride);
            Sse.Prefetch0(Unsafe.AsPointer(ref _prefixes[lo]));
            Sse.Prefetch0(Unsafe.AsPointer(ref _prefixes[last]));
            PrefetchEntries(lo, last + 1);
            if (_histories is { } histories)
            {
                // Not pinned: as for _shared above, a stale hint at worst.
                Sse.Prefetch0(Unsafe.AsPointer(ref histories[lo]));
                Sse.Prefetch0(Unsafe.AsPointer(ref histories[last]));
            }
        }

        private unsafe void PrefetchEntries(int lo, int hi)
        {
            // Pinned: the address is stable without fixed. A hint never faults.
            byte* first = (byte*)Unsafe.AsPointer(ref _entries[lo]);
            byte* last = (byte*)Unsafe.AsPointer(ref _entries[Math.Max(lo, hi - 1)]) + sizeof(Entry) - 1;
            for (byte* line = first; line <= last; line += 64)
            {
                Sse.Prefetch0(line);
            }

            Sse.Prefetch0(last);
        }

        private static ulong[] NewSummary()
        {
            var summary = GC.AllocateUninitializedArray<ulong>(SummaryLength, pinned: true);
            Array.Fill(summary, ulong.MaxValue);
            return summary;
        }

        /// <summary>
        /// Brings <see cref="_summary"/> up to date after <see cref="_prefixes"/> changed from
        /// <paramref name="fromIndex"/> on and <see cref="Count"/> went from <paramref name="oldCount"/>
        /// to what it is: sampled entries at and after that index taken again, those past the new
        /// count set to <see cref="ulong.MaxValue"/>. An append touches at most one.
        /// </summary>
        private void RefreshSummary(int fromIndex, int oldCount)
        {
            int first = (fromIndex + SummaryStride - 1) / SummaryStride;
            int sampled = (Count + SummaryStride - 1) / SummaryStride;
            int sampledBefore = (oldCount + SummaryStride - 1) / SummaryStride;
            for (int j = first; j < sampled; j++)
            {
                _summary[j] = _prefixes[j * SummaryStride];
            }

            for (int j = Math.Max(first, sampled); j < sampledBefore; j++)
            {
                _summary[j] = ulong.MaxValue;
            }
        }

        /// <summary>
        /// Where the first key whose prefix is <paramref name="prefix"/> or more can be, from
        /// <see cref="_summary"/> alone: after every sampled key with a smaller prefix (those keys are
        /// smaller), at or before the first sampled key with a larger one (it is larger). Keys whose
        /// prefixes tie a sampled one are not decided here (they order by their bytes), so the range
        /// includes them. A single pass over the summary: its loads do not wait for each other.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private (int Low, int High) SummaryBounds(ulong prefix)
        {
            int below = 0;
            int atMost = 0;
            int sampled = (Count + SummaryStride - 1) / SummaryStride;
            ref ulong summary = ref MemoryMarshal.GetArrayDataReference(_summary);
            if (Vector256.IsHardwareAccelerated)
            {
                // Whole vectors: the slots past the sampled ones hold ulong.MaxValue, never below a
                // prefix, and counted as at most it only when it is ulong.MaxValue (high is clamped to Count).
                var probe = Vector256.Create(prefix);
                for (int j = 0; j < sampled; j += Vector256<ulong>.Count)
                {
                    var values = Vector256.LoadUnsafe(ref summary, (nuint)j);
                    below += BitOperations.PopCount(Vector256.LessThan(values, probe).ExtractMostSignificantBits());
                    atMost += BitOperations.PopCount(Vector256.LessThanOrEqual(values, probe).ExtractMostSignificantBits());
                }
            }
            else
            {
                for (int j = 0; j < sampled; j++)
                {
                    ulong value = Unsafe.Add(ref summary, j);
                    below += value < prefix ? 1 : 0;
                    atMost += value <= prefix ? 1 : 0;
                }
            }

            int low = below == 0 ? 0 : ((below - 1) * SummaryStride) + 1;
            int high = Math.Min(Count, atMost * SummaryStride);
            return (low, high);
        }

        /// <summary>Copies a key's <paramref name="tail"/> (its rest's bytes past its prefix) into <see cref="KeyBytes"/> (rebuilt first when it does not fit); returns where.</summary>
        private int StoreTail(ReadOnlySpan<byte> tail)
        {
            if (KeyBytes.Length - _keyBytesUsed < tail.Length)
            {
                // Twice what is live (at least 256 bytes: a full chunk's worth of short tails would
                // be rebuilt too often), removed keys' bytes left behind.
                Rebuild(lead: [], dropped: 0, extraBytes: tail.Length, inPlace: false);
            }

            int start = _keyBytesUsed;
            tail.CopyTo(KeyBytes.AsSpan(start));
            _keyBytesUsed += tail.Length;
            return start;
        }

        /// <summary>
        /// One key's entry: where its tail is in <see cref="KeyBytes"/>, its rest's length, and the
        /// one put that created it (version 1) when <see cref="_histories"/> holds no history for it.
        /// One array of them, so a lookup's last reads (the key's length, then its put) touch one
        /// cache line; a key with a history costs one more read (its slot in <see cref="_histories"/>).
        /// No reference in it, so the array lives on the pinned object heap. 12 B: the tail's start,
        /// then one word of the rest's length (16 bits) and the one put (a 40-bit main, an 8-bit sub);
        /// it was 16 with a 4-byte length and a 48/16-bit put, 24 with the put as two longs, 32 with the
        /// history's reference: the index's growth is fresh memory, which costs by the byte on the
        /// writer's thread, and a chunk's entries are allocated whole at its birth (docs/benchmarks.md,
        /// "MVCC in-order puts", sessions 17, 18 and 22).
        /// </summary>
        /// <remarks>
        /// A rest of <see cref="LongRestLength"/> bytes or more (a key 64 KiB longer than what its
        /// chunk's keys share) holds its length in the word's low 48 bits instead, and its key always
        /// has a history object, which then holds its puts (<see cref="Single"/> is not read for a key
        /// with one). Invariant: a long-rest entry's key has a history object (checked where one is made).
        /// </remarks>
        [StructLayout(LayoutKind.Sequential, Pack = 4)]
        private struct Entry
        {
            /// <summary>The shortest rest whose length the word's 16 bits do not hold (their all-ones value marks a long rest).</summary>
            public const int LongRestLength = (1 << LengthBits) - 1;

            private const int LengthBits = 16;
            private const int PutBits = 64 - LengthBits;
            private const int SubBits = 8;
            private const ulong PutMask = (1UL << PutBits) - 1;
            private const ulong SubMask = (1UL << SubBits) - 1;

            /// <summary>Where the key's tail (its rest past its prefix) starts in <see cref="KeyBytes"/>.</summary>
            public int TailStart;

            /// <summary>The rest's length in the high 16 bits; the one put (main in 40 bits, then sub in 8) or a long rest's length in the low 48.</summary>
            private ulong _word;

            /// <summary>The length of the key's rest (its bytes after the chunk's shared ones): its prefix holds the first <see cref="PrefixBytes"/> of them.</summary>
            public int RestLength
            {
                readonly get
                {
                    int length = (int)(_word >> PutBits);
                    return length != LongRestLength ? length : (int)(_word & PutMask);
                }

                set => _word = value >= LongRestLength
                    ? ((ulong)LongRestLength << PutBits) | (uint)value
                    : ((ulong)value << PutBits) | (IsLongRest ? 0 : _word & PutMask);
            }

            public readonly int TailLength => Math.Max(0, RestLength - PrefixBytes);

            /// <summary>The one put, for a key without a history object (never a long rest's).</summary>
            public readonly Revision Single
            {
                get
                {
                    if (IsLongRest)
                    {
                        throw new InvariantViolationException("MVCC key index: the one put of a key whose long rest's length is in its entry (it has a history object).");
                    }

                    return Unpack(_word & PutMask);
                }
            }

            private readonly bool IsLongRest => (int)(_word >> PutBits) == LongRestLength;

            /// <summary>An entry for a key held as its one put (which must <see cref="Fits"/>, and its rest be shorter than <see cref="LongRestLength"/>).</summary>
            public static Entry OfOnePut(int tailStart, int restLength, Revision single)
            {
                if (!Fits(single) || restLength >= LongRestLength)
                {
                    throw new InvariantViolationException($"MVCC key index: a key held as its one put {single} with a rest of {restLength} bytes does not fit its entry (main below 2^40, sub below 2^8, rest below {LongRestLength} bytes).");
                }

                return new Entry
                {
                    TailStart = tailStart,
                    _word = ((ulong)restLength << PutBits) | Bits(single),
                };
            }

            /// <summary>A revision that <see cref="Fits"/> as one nonzero number (main in the high bits, sub in the low 8): a key's second put in <see cref="_seconds"/>.</summary>
            public static ulong Pack(Revision revision)
            {
                if (!Fits(revision) || revision.Main <= 0)
                {
                    throw new InvariantViolationException($"MVCC key index: revision {revision} packed into a key's second-put slot (main 1 to 2^40, sub below 2^8).");
                }

                return Bits(revision);
            }

            /// <summary>The revision <see cref="Pack"/> made <paramref name="packed"/> from (also an entry's one put, its word's low bits).</summary>
            public static Revision Unpack(ulong packed) => new((long)(packed >> SubBits), (long)(packed & SubMask));

            // A revision that fits, as the low bits of an entry's word or a second-put slot: main above sub.
            private static ulong Bits(Revision revision) => ((ulong)revision.Main << SubBits) | (ulong)revision.Sub;

            /// <summary>An entry for a key with a history object (no one put in it).</summary>
            public static Entry WithHistory(int tailStart, int restLength) => new() { TailStart = tailStart, RestLength = restLength };

            /// <summary>
            /// Whether <paramref name="revision"/> can be held in an entry. Main revisions reach 2^40
            /// after a trillion writes and a sub is a change's place in one transaction (at most
            /// MaxTxnOps, 128 by default); a key whose one put does not fit gets a history object
            /// instead, with the same answers.
            /// </summary>
            public static bool Fits(Revision revision) =>
                (ulong)revision.Main < (1UL << (PutBits - SubBits)) && (ulong)revision.Sub <= SubMask;
        }
    }
}
