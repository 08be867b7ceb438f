using EmbeddedRaft.Storage;

namespace EmbeddedRaft.Consensus.Log;

/// <summary>
/// A list that grows and shrinks at both ends in amortised O(1): a ring over a power-of-two array.
/// Removed slots are cleared so the garbage collector can take what they referenced (the entry
/// cache's data). Not thread-safe.
/// </summary>
internal sealed class RingList<T>
{
    private T[] _items = new T[16];
    private int _head;

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

    // After a large compaction the array would otherwise stay at its peak size for good.
    private void ShrinkIfSparse()
    {
        if (_items.Length > 1024 && Count < _items.Length / 8)
        {
            var next = new T[Math.Max(16, (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, Count * 2)))];
            for (int i = 0; i < Count; i++)
            {
                next[i] = _items[(_head + i) & (_items.Length - 1)];
            }

            _items = next;
            _head = 0;
        }
    }
}
