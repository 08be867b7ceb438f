using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Storage;
using EmbeddedRaft.Storage.Wal;

namespace EmbeddedRaft.Consensus.Log;

/// <summary>
/// The in-memory view of the durable log: a slot (term, size, type, WAL position) for every entry
/// in <c>(Offset, LastIndex]</c>, and the entries themselves only for a suffix of it, the cache,
/// bounded in bytes. Not thread-safe: <see cref="DurableRaftLog"/> holds its lock around every call.
/// </summary>
/// <remarks>
/// Invariants: the cache holds exactly the entries <c>[CacheFirst, LastIndex]</c> (a suffix, possibly
/// empty); every entry below <see cref="CacheFirst"/> has a known position before
/// <see cref="WriteAheadLog.DurablePosition"/> (only durable entries are evicted, so a reader of the
/// log always finds them); <see cref="CachedBytes"/> is the sum of the cached entries' sizes.
/// </remarks>
internal sealed class EntryTable
{
    private readonly RingList<EntrySlot> _slots = new();
    private readonly RingList<Entry> _cache = new();

    /// <summary>The index of the entry just before the first one held (the compaction or snapshot point).</summary>
    public ulong Offset { get; private set; }

    /// <summary>The term of the entry at <see cref="Offset"/>.</summary>
    public ulong OffsetTerm { get; private set; }

    public ulong LastIndex => Offset + (ulong)_slots.Count;

    /// <summary>The first cached index; <c>LastIndex + 1</c> when nothing is cached.</summary>
    public ulong CacheFirst => LastIndex + 1 - (ulong)_cache.Count;

    public long CachedBytes { get; private set; }

    public int Count => _slots.Count;

    /// <summary>Discards everything; the log now starts after <paramref name="offset"/>.</summary>
    public void Reset(ulong offset, ulong offsetTerm)
    {
        _slots.Clear();
        _cache.Clear();
        CachedBytes = 0;
        Offset = offset;
        OffsetTerm = offsetTerm;
    }

    public ref EntrySlot Slot(ulong index)
    {
        if (index <= Offset || index > LastIndex)
        {
            throw new InvariantViolationException($"Entry {index} is outside the table ({Offset}, {LastIndex}].");
        }

        return ref _slots[(int)(index - Offset - 1)];
    }

    /// <summary>The term of the entry at <paramref name="index"/>, for <c>Offset &lt;= index &lt;= LastIndex</c>.</summary>
    public ulong TermAt(ulong index) => index == Offset ? OffsetTerm : Slot(index).Term;

    /// <summary>Removes the entries from <paramref name="index"/> on (<c>Offset &lt; index &lt;= LastIndex + 1</c>).</summary>
    public void TruncateFrom(ulong index)
    {
        if (index <= Offset || index > LastIndex + 1)
        {
            throw new InvariantViolationException($"Cannot truncate from {index}: the table holds ({Offset}, {LastIndex}].");
        }

        ulong cacheFirst = CacheFirst;
        if (index <= cacheFirst)
        {
            _cache.Clear();
            CachedBytes = 0;
        }
        else
        {
            int keep = (int)(index - cacheFirst);
            for (int i = keep; i < _cache.Count; i++)
            {
                CachedBytes -= _cache[i].EncodedSizeBytes;
            }

            _cache.KeepFirst(keep);
        }

        _slots.KeepFirst((int)(index - Offset - 1));
    }

    /// <summary>
    /// Appends the entry after <see cref="LastIndex"/>. With <paramref name="cache"/> it joins the
    /// cache; without, the cache must be empty (replay fills it at the end, from the log).
    /// </summary>
    public void Append(in Entry entry, WalPosition position, bool cache)
    {
        if (!cache && _cache.Count != 0)
        {
            throw new InvariantViolationException($"Entry {entry.Index} appended uncached after cached entries: the cache would stop being a suffix.");
        }

        AddSlot(entry.Index, entry.Term, entry.Type, entry.EncodedSizeBytes, position);
        if (cache)
        {
            _cache.Add(entry);
            CachedBytes += entry.EncodedSizeBytes;
        }
    }

    /// <summary>Appends a slot only (replay, which reads the data of the cached suffix at the end): the cache must be empty.</summary>
    public void AppendSlot(ulong index, ulong term, EntryType type, int sizeBytes, WalPosition position)
    {
        if (_cache.Count != 0)
        {
            throw new InvariantViolationException($"Entry {index} appended uncached after cached entries: the cache would stop being a suffix.");
        }

        AddSlot(index, term, type, sizeBytes, position);
    }

    /// <summary>Fills the empty cache with <paramref name="entries"/>, which must be the log's last entries in order.</summary>
    public void FillCache(IReadOnlyList<Entry> entries)
    {
        if (_cache.Count != 0 || (entries.Count > 0 && entries[^1].Index != LastIndex) || (ulong)entries.Count > (ulong)_slots.Count)
        {
            throw new InvariantViolationException("The cache can only be filled, when empty, with the last entries of the log.");
        }

        foreach (var entry in entries)
        {
            _cache.Add(entry);
            CachedBytes += entry.EncodedSizeBytes;
        }
    }

    /// <summary>Discards the entries up to <paramref name="index"/> (<c>Offset &lt;= index &lt;= LastIndex</c>), which had term <paramref name="term"/>.</summary>
    public void CompactTo(ulong index, ulong term)
    {
        if (index < Offset || index > LastIndex)
        {
            throw new InvariantViolationException($"Cannot compact to {index}: the table holds ({Offset}, {LastIndex}].");
        }

        ulong cacheFirst = CacheFirst;
        if (cacheFirst <= index)
        {
            int drop = (int)(index - cacheFirst + 1);
            for (int i = 0; i < drop; i++)
            {
                CachedBytes -= _cache[i].EncodedSizeBytes;
            }

            _cache.RemoveFirst(drop);
        }

        _slots.RemoveFirst((int)(index - Offset));
        Offset = index;
        OffsetTerm = term;
    }

    private void AddSlot(ulong index, ulong term, EntryType type, int sizeBytes, WalPosition position)
    {
        if (index != LastIndex + 1)
        {
            throw new InvariantViolationException($"Entry {index} appended after {LastIndex}.");
        }

        _slots.Add(new EntrySlot { Term = term, Position = position, SizeBytes = sizeBytes, Type = type });
    }

    /// <summary>
    /// Drops the oldest cached entries, only ones durable before <paramref name="durable"/>: while the
    /// cache holds more than <paramref name="limitBytes"/> and the oldest is committed (at or below
    /// <paramref name="committed"/>), and while it holds more than <paramref name="ceilingBytes"/>
    /// whatever the entry.
    /// </summary>
    public void Evict(long limitBytes, long ceilingBytes, WalPosition durable, ulong committed)
    {
        while (_cache.Count > 0 && (CachedBytes > ceilingBytes || (CachedBytes > limitBytes && CacheFirst <= committed)))
        {
            var position = Slot(CacheFirst).Position;
            if (position == EntrySlot.Unknown || position >= durable)
            {
                return;
            }

            CachedBytes -= _cache[0].EncodedSizeBytes;
            _cache.RemoveFirst(1);
        }
    }

    public bool TryGetCached(ulong index, out Entry entry)
    {
        ulong cacheFirst = CacheFirst;
        if (index >= cacheFirst && index <= LastIndex)
        {
            entry = _cache[(int)(index - cacheFirst)];
            return true;
        }

        entry = default;
        return false;
    }
}
