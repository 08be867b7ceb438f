using EmbeddedRaft.Storage;

namespace EmbeddedRaft.Consensus.Log;

/// <summary>
/// A list that grows and shrinks at both ends in amortised O(1): a ring over a power-of-two array.
/// Removed slots are cleared so the garbage collector can take what they referenced (the entry
/// cache's data). Not thread-safe.
/// </summary>
/// <remarks>
/// The array shrinks only when it has stayed sparse (never more than an eighth full) while taking in
/// half its length of new items, and then to fit the peak seen meanwhile (plus a quarter), not the
/// current count: a log compacted every N entries drops to a few items after each compaction and
/// climbs back to N, so shrinking to the current count made it regrow 16, 32, ... N slots (large-object
/// heap arrays) after every snapshot. A one-off burst still gives its memory back once the ring has
/// cycled through half its length at the smaller load.
/// </remarks>
internal sealed class RingList<T>
{
    private T[] _items = new T[16];
    private int _head;

    // The most items held, and how many were added, since a remove last found the ring dense (or it
    // shrank): a grown ring is dense (half full), so the window only runs while it stays sparse.
    private int _peakSinceDense;
    private int _addedSinceDense;

    public int Count { get; private set; }

    public ref T this[int position]
    {
        get
        {
            if ((uint)position >= (uint)Count)
            {
                throw new InvariantViolationException($"Ring position {position} is outside 0..{Count - 1}.");
            }

            return ref _items[(_head + position) & (_items.Length - 1)];
        }
    }

    public void Add(in T item)
    {
        if (Count == _items.Length)
        {
            var next = new T[_items.Length * 2];
            for (int i = 0; i < Count; i++)
            {
                next[i] = _items[(_head + i) & (_items.Length - 1)];
            }

            _items = next;
            _head = 0;
        }

        _items[(_head + Count) & (_items.Length - 1)] = item;
        Count++;
        _addedSinceDense++;
        if (Count > _peakSinceDense)
        {
            _peakSinceDense = Count;
        }
    }

    /// <summary>Removes the first <paramref name="count"/> items.</summary>
    public void RemoveFirst(int count)
    {
        if ((uint)count > (uint)Count)
        {
            throw new InvariantViolationException($"Cannot remove {count} of {Count} items.");
        }

        for (int i = 0; i < count; i++)
        {
            _items[(_head + i) & (_items.Length - 1)] = default!;
        }

        _head = (_head + count) & (_items.Length - 1);
        Count -= count;
        ShrinkIfSparse();
    }

    /// <summary>Keeps the first <paramref name="count"/> items and removes the rest.</summary>
    public void KeepFirst(int count)
    {
        if ((uint)count > (uint)Count)
        {
            throw new InvariantViolationException($"Cannot keep {count} of {Count} items.");
        }

        for (int i = count; i < Count; i++)
        {
            _items[(_head + i) & (_items.Length - 1)] = default!;
        }

        Count = count;
        ShrinkIfSparse();
    }

    public void Clear() => KeepFirst(0);

    /// <summary>The length of the backing array (a power of two), for tests of the shrink policy.</summary>
    internal int Capacity => _items.Length;

    // After a large compaction the array would otherwise stay at its peak size for good; but a ring
    // that refills to its old size (the next compaction interval) must keep its array.
    private void ShrinkIfSparse()
    {
        int sparse = _items.Length / 8;
        if (_items.Length <= 1024 || _peakSinceDense >= sparse)
        {
            // Dense (or small) now: the sparse window starts again from here.
            _peakSinceDense = Count;
            _addedSinceDense = 0;
            return;
        }

        if (_addedSinceDense < _items.Length / 2)
        {
            return;
        }

        int peak = Math.Max(_peakSinceDense, Count);
        int length = Math.Max(16, (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)(peak + (peak / 4) + 1)));
        if (length >= _items.Length || Count > length)
        {
            throw new InvariantViolationException($"Ring shrink to {length} from {_items.Length} with {Count} items (peak {peak}).");
        }

        var next = new T[length];
        for (int i = 0; i < Count; i++)
        {
            next[i] = _items[(_head + i) & (_items.Length - 1)];
        }

        _items = next;
        _head = 0;
        _peakSinceDense = Count;
        _addedSinceDense = 0;
    }
}
