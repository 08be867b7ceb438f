using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using EmbeddedRaft.Mvcc.Index;

namespace EmbeddedRaft.Mvcc.Store;

/// <summary>
/// The revisions written since the last B+tree commit (etcd's txReadBuffer): a reader that sees
/// revision R in the index finds each value either here or in a B+tree snapshot it began
/// under the same index lock.
/// </summary>
/// <remarks>
/// <para>Why that is enough: the writer swaps in a fresh batch (under the index write lock) only after
/// the B+tree commit that holds this batch's revisions returned, and never removes entries from a
/// batch. A reader that took this batch under the read lock finds every uncommitted revision here;
/// one that took the next batch began its B+tree snapshot after this batch's commit. Entries are
/// added before the revision that makes them visible is published.</para>
/// <para>Layout, for the writer's allocation rate (a batch holds up to 10,000 writes that stay alive
/// until it commits): entries are appended in revision order to segments of
/// <see cref="SegmentLength"/> and found by binary search, and stored values are copied into shared
/// chunks of <see cref="ChunkBytes"/>, so a write adds no object of its own here.</para>
/// <para>Reuse: the batch that replaces this one after its commit (<see cref="Next"/>) takes over its
/// segments and chunks when no reader holds it, so in steady state the pending batch allocates
/// nothing. A reader therefore <see cref="Hold"/>s the batch it took (under the index read lock,
/// where it took it; or the writer itself, before the swap) until it has read the last value from
/// it, and then <see cref="Release"/>s it. A batch some reader holds at the swap is retired: its
/// last <see cref="Release"/> hands its buffers to a spare slot shared by its successors, where a
/// later <see cref="Next"/> takes them. Why: the watch hub holds each batch its live watchers'
/// buffers slice (their consumers decode the events from these bytes), so with a live watcher
/// nearly every batch is still held at its swap; without the slot each batch would allocate its
/// buffers anew (two slots: see <see cref="SpareBuffers"/>). Every reader of <see cref="StoreState.Pending"/> other than the writer must hold.</para>
/// <para>Thread-safety: one writer (<see cref="Allocate"/>, <see cref="Add"/>, <see cref="Next"/>),
/// any number of readers. An entry is written before the count that covers it is published,
/// segments and chunks are never changed where a reader holding the batch can see them, and a
/// grown segment directory holds every segment of the one before it.</para>
/// </remarks>
internal sealed class PendingBatch
{
    private const int SegmentShift = 10;
    private const int SegmentLength = 1 << SegmentShift;
    private const int ChunkBytes = 64 * 1024;

    /// <summary>Set in <see cref="_readers"/> once the batch was swapped out (<see cref="Next"/>).</summary>
    private const int Retired = 1 << 30;

    /// <summary>Buffers of a retired batch whose last reader left, for a later batch (shared by a batch and its successors).</summary>
    private readonly SpareBuffers _spare;

    private Entry[][] _segments = new Entry[4][];
    private int _count;

    /// <summary>Readers holding the batch (see <see cref="Hold"/>), plus <see cref="Retired"/> once it was swapped out.</summary>
    private int _readers;

    // Writer only: the chunks stored values are copied into (the first _chunksInUse of them hold
    // this batch's values, the rest came from an earlier batch and wait for reuse), and how much
    // of the current one (the last in use) is taken.
    private List<byte[]> _chunks = [];
    private int _chunksInUse;
    private int _chunkUsed;

    public PendingBatch()
        : this(new SpareBuffers())
    {
    }

    private PendingBatch(SpareBuffers spare)
    {
        _spare = spare;
    }

    public int Count => Volatile.Read(ref _count);

    /// <summary>Space for a stored value of <paramref name="length"/> bytes, for the writer to fill before it <see cref="Add"/>s it.</summary>
    public Memory<byte> Allocate(int length)
    {
        if (length > ChunkBytes / 4)
        {
            return new byte[length];
        }

        if (_chunksInUse == 0 || ChunkBytes - _chunkUsed < length)
        {
            if (_chunksInUse == _chunks.Count)
            {
                _chunks.Add(GC.AllocateUninitializedArray<byte>(ChunkBytes));
            }

            _chunksInUse++;
            _chunkUsed = 0;
        }

        var space = _chunks[_chunksInUse - 1].AsMemory(_chunkUsed, length);
        _chunkUsed += length;
        return space;
    }

    /// <summary>Marks a reader as holding the batch: under the index read lock, where the batch was taken from <see cref="StoreState.Pending"/>, or on the writer thread before the batch is swapped out.</summary>
    public void Hold()
    {
        if ((Interlocked.Increment(ref _readers) & Retired) != 0)
        {
            // Its buffers may already serve the next batch.
            throw new InvariantViolationException("MVCC store: a pending batch held after it was swapped out.");
        }
    }

    /// <summary>Ends a <see cref="Hold"/>, once the reader has read every value it takes from the batch; the last one of a swapped-out batch hands its buffers on for reuse. Any thread.</summary>
    public void Release()
    {
        int left = Interlocked.Decrement(ref _readers);
        if (left < 0 || left == Retired - 1)
        {
            throw new InvariantViolationException("MVCC store: a pending batch released more often than held.");
        }

        if (left == Retired)
        {
            // The last reader of a swapped-out batch: no one can read it any more (no hold after the
            // swap), so its buffers may be written again. Full slots keep their buffers (same size).
            _spare.Offer(new SpareBuffers.Set(_segments, _chunks));
        }
    }

    /// <summary>
    /// The empty batch that replaces this one once its commit returned (writer thread, under the
    /// index write lock, where the new batch is published). It reuses this batch's buffers when no
    /// reader holds this one (none can take it after the swap, so none can see them change), or else
    /// the buffers an earlier retired batch's last reader handed back, if any.
    /// </summary>
    public PendingBatch Next()
    {
        var next = new PendingBatch(_spare);
        if (Interlocked.Add(ref _readers, Retired) == Retired)
        {
            next._segments = _segments;
            next._chunks = _chunks;
            _segments = [];
            _chunks = [];
            _count = 0;
        }
        else if (_spare.TakeAny() is { } spare)
        {
            next._segments = spare.Segments;
            next._chunks = spare.Chunks;
        }

        return next;
    }

    /// <summary>Adds the stored value of <paramref name="revision"/> (writer thread), which must be after every revision in the batch.</summary>
    public void Add(Revision revision, bool tombstone, ReadOnlyMemory<byte> storedValue)
    {
        int count = _count;
        if (count > 0 && revision <= At(_segments, count - 1).Revision)
        {
            throw new InvariantViolationException($"MVCC store: revision {revision} added to the pending batch after {At(_segments, count - 1).Revision}.");
        }

        var segments = _segments;
        int segment = count >> SegmentShift;
        if (segment == segments.Length)
        {
            var grown = new Entry[segments.Length * 2][];
            Array.Copy(segments, grown, segments.Length);
            Volatile.Write(ref _segments, grown);
            segments = grown;
        }

        segments[segment] ??= new Entry[SegmentLength];
        segments[segment][count & (SegmentLength - 1)] = new Entry(revision, tombstone, storedValue);
        Volatile.Write(ref _count, count + 1);
    }

    public bool TryGet(Revision revision, out Entry entry)
    {
        int position = -1;
        return TryGet(revision, ref position, out entry);
    }

    /// <summary>
    /// <see cref="TryGet(Revision, out Entry)"/> for a reader walking the batch in revision order (the
    /// watch hub, notifying a committed batch change by change): <paramref name="position"/> is where
    /// the caller expects the entry (the one after the last it found; -1 when it has no guess). A
    /// right guess costs one comparison instead of a binary search; a wrong one falls back to the
    /// search. On success <paramref name="position"/> becomes the position after the entry found.
    /// </summary>
    public bool TryGet(Revision revision, ref int position, out Entry entry)
    {
        int count = Volatile.Read(ref _count);
        var segments = Volatile.Read(ref _segments);
        if ((uint)position < (uint)count)
        {
            ref readonly var guessed = ref At(segments, position);
            if (guessed.Revision == revision)
            {
                entry = guessed;
                position++;
                return true;
            }
        }

        int lo = 0;
        int hi = count - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            ref readonly var candidate = ref At(segments, mid);
            int order = candidate.Revision.CompareTo(revision);
            if (order == 0)
            {
                entry = candidate;
                position = mid + 1;
                return true;
            }

            if (order < 0)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        entry = default;
        return false;
    }

    /// <summary>
    /// The entry at <paramref name="position"/> (in revision order), for a reader holding the batch
    /// that knows where the entries it wants lie (a watcher's consumer reading a committed batch's
    /// revisions, see <see cref="Watch.WatchBuffer"/>).
    /// </summary>
    /// <exception cref="InvariantViolationException"><paramref name="position"/> is not below <see cref="Count"/>.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Entry EntryAt(int position)
    {
        int count = Volatile.Read(ref _count);
        if ((uint)position >= (uint)count)
        {
            ThrowPositionNotHeld(position, count);
        }

        return At(Volatile.Read(ref _segments), position);
    }

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowPositionNotHeld(int position, int count) =>
        throw new InvariantViolationException($"MVCC store: pending batch position {position} read, the batch holds {count} entries.");

    /// <summary>The entries at or below <paramref name="maxMain"/>, in revision order (for hashing).</summary>
    public List<Entry> UpTo(long maxMain)
    {
        int count = Volatile.Read(ref _count);
        var segments = Volatile.Read(ref _segments);
        var list = new List<Entry>();
        for (int i = 0; i < count && At(segments, i).Revision.Main <= maxMain; i++)
        {
            list.Add(At(segments, i));
        }

        return list;
    }

    /// <summary>
    /// The entries of main revisions <paramref name="fromMain"/> through <paramref name="toMain"/>, in
    /// revision order: found by binary search, so a reader wanting a few revisions of a large batch
    /// (a watcher catching up in small steps) does not copy the whole batch each time.
    /// </summary>
    public List<Entry> Between(long fromMain, long toMain)
    {
        int count = Volatile.Read(ref _count);
        var segments = Volatile.Read(ref _segments);
        int lo = 0;
        int hi = count;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (At(segments, mid).Revision.Main < fromMain)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        var list = new List<Entry>();
        for (int i = lo; i < count && At(segments, i).Revision.Main <= toMain; i++)
        {
            list.Add(At(segments, i));
        }

        return list;
    }

    private static ref readonly Entry At(Entry[][] segments, int index) => ref segments[index >> SegmentShift][index & (SegmentLength - 1)];

    internal readonly record struct Entry(Revision Revision, bool Tombstone, ReadOnlyMemory<byte> StoredValue);

    /// <summary>
    /// The slots retired batches' buffers wait in for a later batch (see <see cref="Next"/>). Two:
    /// with a live watcher a batch is still held at its swap and its predecessor often too (its
    /// watcher's consumer is still decoding it), so the batch after the swap finds one slot empty;
    /// with one slot, the predecessor's buffers, released after the next swap into a slot already
    /// full, went to the collector and the batch after that allocated its buffers anew (measured
    /// in docs/benchmarks.md, "Watches, session 10").
    /// </summary>
    private sealed class SpareBuffers
    {
        private Set? _first;
        private Set? _second;

        /// <summary>Keeps <paramref name="set"/> in an empty slot, if any (any thread).</summary>
        public void Offer(Set set)
        {
            if (Interlocked.CompareExchange(ref _first, set, null) is not null)
            {
                Interlocked.CompareExchange(ref _second, set, null);
            }
        }

        /// <summary>Takes the buffers of one slot, or null when both are empty (writer thread).</summary>
        public Set? TakeAny() => Interlocked.Exchange(ref _first, null) ?? Interlocked.Exchange(ref _second, null);

        public sealed record Set(Entry[][] Segments, List<byte[]> Chunks);
    }
}
