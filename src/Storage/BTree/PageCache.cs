namespace EmbeddedRaft.Storage.BTree;

/// <summary>
/// A shared cache of verified page buffers, indexed by page id (a run is cached under its first page).
/// </summary>
/// <remarks>
/// Safe without locks on the read path because a buffer is never changed once published: under
/// copy-on-write a page id only gets new contents after it was freed and no reader can reach it any
/// more, and the writer then publishes a new buffer for that id (write-through) instead of changing
/// the old one. Readers holding the old buffer keep a valid, unchanging copy. Inserts and evictions
/// take a lock; eviction clears slots at a sweeping hand (FIFO-like), so the cache holds at most
/// about its capacity in bytes.
/// </remarks>
internal sealed class PageCache
{
    private readonly object _gate = new();
    private readonly long _capacityBytes;
    private byte[]?[] _slots = new byte[]?[1024];
    private long _cachedBytes;
    private long _hand;

    public PageCache(long capacityBytes) => _capacityBytes = capacityBytes;

    public long CachedBytes => Volatile.Read(ref _cachedBytes);

    public byte[]? TryGet(long pageId)
    {
        var slots = Volatile.Read(ref _slots);
        return (ulong)pageId < (ulong)slots.Length ? Volatile.Read(ref slots[pageId]) : null;
    }

    /// <summary>Forgets the contents of <paramref name="pageId"/>; returns the buffer that held them, if any.</summary>
    public byte[]? Remove(long pageId)
    {
        lock (_gate)
        {
            var slots = _slots;
            if (pageId < slots.Length && Interlocked.Exchange(ref slots[pageId], null) is { } old)
            {
                _cachedBytes -= old.Length;
                return old;
            }

            return null;
        }
    }

    /// <summary>
    /// Publishes <paramref name="buffer"/> as the contents of <paramref name="pageId"/>; returns the
    /// buffer it replaced in that slot, if any (buffers evicted for capacity are not returned).
    /// </summary>
    public byte[]? Set(long pageId, byte[] buffer)
    {
        lock (_gate)
        {
            var slots = _slots;
            if (pageId >= slots.Length)
            {
                long length = slots.Length;
                while (length <= pageId)
                {
                    length *= 2;
                }

                var bigger = new byte[]?[length];
                slots.CopyTo(bigger, 0);
                Volatile.Write(ref _slots, bigger);
                slots = bigger;
            }

            var old = Interlocked.Exchange(ref slots[pageId], buffer);
            _cachedBytes += buffer.Length - (old?.Length ?? 0);
            long budget = slots.Length; // bound the sweep: at most one full turn per insert
            while (_cachedBytes > _capacityBytes && budget-- > 0)
            {
                _hand = (_hand + 1) % slots.Length;
                if (_hand != pageId && slots[_hand] is { } victim)
                {
                    Volatile.Write(ref slots[_hand], null);
                    _cachedBytes -= victim.Length;
                }
            }

            return old;
        }
    }
}
