using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace EmbeddedRaft.Mvcc.Index;

/// <summary>
/// The ascending revisions of one generation, held inline while there is one (most keys are
/// written once between compactions) and in an array once there are more: a key's history is then
/// one object, not a list and its array per generation.
/// </summary>
/// <remarks>
/// <para>The first and the last revision are also held inline whatever the count, so what the
/// writer asks of a live key at every put (its latest revision, the generation's first, and
/// whether the latest is at or below a revision: <see cref="First"/>, <see cref="Last"/>,
/// <see cref="LastAtOrBelow"/> at the present) is answered from the history object alone, without
/// a dependent cache miss on the array (a key written again lands in a cold object, then its cold
/// array: the key index's chain of misses, docs/benchmarks.md, "MVCC writer's CPU per put,
/// session 24"), and a put writes its revision into the array without reading the array first
/// (<see cref="_capacity"/>).</para>
/// <para>A mutable struct: keep it in a field and change it through that field (or a <c>ref</c> to
/// it), never through a copy. Invariants: revisions ascend; <see cref="Count"/> 0: <c>_all</c>
/// null, <c>_first</c> and <c>_last</c> default; 1: <c>_all</c> null, <c>_first == _last</c> the one
/// revision; 2 or more: <c>_all</c> holds all of them in its first <see cref="Count"/> slots,
/// <c>_first == _all[0]</c>, <c>_last == _all[Count - 1]</c>, and <c>_capacity == _all.Length</c>
/// (0 while <c>_all</c> is null).</para>
/// </remarks>
internal struct RevisionList
{
    private Revision _first;
    private Revision _last;
    private Revision[]? _all;
    private int _count;
    private int _capacity;

    public readonly int Count => _count;

    public readonly Revision this[int index]
    {
        get
        {
            if ((uint)index >= (uint)_count)
            {
                throw new ArgumentOutOfRangeException(nameof(index), index, $"A generation holds {_count} revisions.");
            }

            if (index == _count - 1)
            {
                return _last;
            }

            return index == 0 ? _first : _all![index];
        }
    }

    /// <summary>The oldest revision (inline: no read of the array).</summary>
    public readonly Revision First => _count > 0 ? _first : this[0];

    /// <summary>The newest revision (inline: no read of the array).</summary>
    public readonly Revision Last => _count > 0 ? _last : this[-1];

    public void Add(Revision revision)
    {
        if (_count == 0)
        {
            _first = revision;
            _last = revision;
            _count = 1;
            return;
        }

        if (_all is null)
        {
            _all = new Revision[4];
            _capacity = _all.Length;
            _all[0] = _first;
        }
        else if (_count == _capacity)
        {
            Array.Resize(ref _all, _count * 2);
            _capacity = _all.Length;
        }

        // _count < _capacity == _all.Length (the struct's invariant, kept by the two branches
        // above): the slot is in bounds without reading the array's length, which would wait for
        // the array's first cache line before the put can go on.
        Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_all), _count) = revision;
        _count++;
        _last = revision;
    }

    /// <summary>Drops the <paramref name="count"/> oldest revisions (compaction); back inline when one is left.</summary>
    public void RemoveFirst(int count)
    {
        if (count < 0 || count > _count)
        {
            throw new InvariantViolationException($"MVCC key index: removing {count} of a generation's {_count} revisions.");
        }

        if (count == 0)
        {
            return;
        }

        _count -= count;
        if (_count == 0)
        {
            this = default;
            return;
        }

        if (_count == 1)
        {
            // The one left is the last, already inline.
            _first = _last;
            _all = null;
            _capacity = 0;
            return;
        }

        Array.Copy(_all!, count, _all!, 0, _count);
        _first = _all![0];
        if (_last != _all[_count - 1])
        {
            throw new InvariantViolationException($"MVCC key index: a generation's inline last revision {_last} is not its array's {_all[_count - 1]}.");
        }
    }

    /// <summary>
    /// Index of the last revision whose main is at most <paramref name="atMain"/>, or -1 (etcd's
    /// <c>walk</c> from the end). A read at or after the newest revision (every put's, and reads at
    /// the present) is answered inline.
    /// </summary>
    public readonly int LastAtOrBelow(long atMain)
    {
        if (_count == 0)
        {
            return -1;
        }

        if (_last.Main <= atMain)
        {
            return _count - 1;
        }

        if (_all is null || _first.Main > atMain)
        {
            return -1;
        }

        int lo = 0;
        int hi = _count - 1;
        int found = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_all[mid].Main <= atMain)
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

    public readonly Revision[] ToArray()
    {
        var copy = new Revision[_count];
        for (int i = 0; i < _count; i++)
        {
            copy[i] = this[i];
        }

        return copy;
    }
}
