namespace EmbeddedRaft.Mvcc.Index;

/// <summary>
/// The ascending revisions of one generation, held inline while there is one (most keys are
/// written once between compactions) and in an array once there are more: a key's history is then
/// one object, not a list and its array per generation.
/// </summary>
/// <remarks>
/// A mutable struct: keep it in a field and change it through that field (or a <c>ref</c> to it),
/// never through a copy. Invariant: revisions ascend; while <c>_all</c> is null, <see cref="Count"/>
/// is 0 or 1 and the one revision is <c>_first</c>.
/// </remarks>
internal struct RevisionList
{
    private Revision _first;
    private Revision[]? _all;
    private int _count;

    public readonly int Count => _count;

    public readonly Revision this[int index]
    {
        get
        {
            if ((uint)index >= (uint)_count)
            {
                throw new ArgumentOutOfRangeException(nameof(index), index, $"A generation holds {_count} revisions.");
            }

            return _all is null ? _first : _all[index];
        }
    }

    public readonly Revision First => this[0];

    public readonly Revision Last => this[_count - 1];

    public void Add(Revision revision)
    {
        if (_all is null)
        {
            if (_count == 0)
            {
                _first = revision;
                _count = 1;
                return;
            }

            _all = new Revision[4];
            _all[0] = _first;
        }
        else if (_count == _all.Length)
        {
            Array.Resize(ref _all, _count * 2);
        }

        _all[_count++] = revision;
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

        if (_all is null)
        {
            _count = 0;
            _first = default;
            return;
        }

        _count -= count;
        if (_count <= 1)
        {
            _first = _count == 1 ? _all[count] : default;
            _all = null;
            return;
        }

        Array.Copy(_all, count, _all, 0, _count);
    }

    /// <summary>
    /// Index of the last revision whose main is at most <paramref name="atMain"/>, or -1 (etcd's
    /// <c>walk</c> from the end).
    /// </summary>
    public readonly int LastAtOrBelow(long atMain)
    {
        if (_all is null)
        {
            return _count == 1 && _first.Main <= atMain ? 0 : -1;
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
