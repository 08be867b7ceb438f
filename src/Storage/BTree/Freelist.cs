namespace EmbeddedRaft.Storage.BTree;

/// <summary>
/// Free pages of the file, owned by the writer (only the writer thread touches it).
/// </summary>
/// <remarks>
/// A page freed by transaction F is still reachable from every snapshot older than F, so it goes to
/// a pending list tagged with F and becomes allocatable only once F &lt;= the oldest open reader's
/// snapshot and F &lt;= the last durable transaction (so that a crash, which falls back to the durable
/// meta page, never finds one of its pages overwritten by a later, unsynced commit).
/// Invariant: <see cref="_free"/> is sorted ascending and holds no duplicates.
/// </remarks>
internal sealed class Freelist
{
    private readonly List<long> _free = [];
    private readonly SortedDictionary<long, List<long>> _pending = [];
    private readonly List<long> _takenThisTransaction = [];
    private long _pendingCount;

    public int FreeCount => _free.Count;

    public long PendingCount => _pendingCount;

    public long TotalCount => _free.Count + _pendingCount;

    public void Load(IEnumerable<long> ids)
    {
        _free.Clear();
        _free.AddRange(ids);
        _free.Sort();
        _pending.Clear();
        _pendingCount = 0;
    }

    /// <summary>Makes pages freed by transactions up to <paramref name="txid"/> allocatable.</summary>
    public void Release(long txid)
    {
        List<long>? released = null;
        foreach (var (freedBy, ids) in _pending)
        {
            if (freedBy > txid)
            {
                break;
            }

            released ??= [];
            released.AddRange(ids);
        }

        if (released is null)
        {
            return;
        }

        foreach (long freedBy in _pending.Keys.Where(t => t <= txid).ToList())
        {
            _pending.Remove(freedBy);
        }

        _pendingCount -= released.Count;
        AddFree(released);
    }

    public void BeginTransaction() => _takenThisTransaction.Clear();

    /// <summary>Takes <paramref name="count"/> contiguous free pages, or returns -1 when there is no such run.</summary>
    public long TryAllocate(int count)
    {
        if (_free.Count == 0)
        {
            return -1;
        }

        if (count == 1)
        {
            long id = _free[^1];
            _free.RemoveAt(_free.Count - 1);
            _takenThisTransaction.Add(id);
            return id;
        }

        int runStart = 0;
        for (int i = 1; i <= _free.Count; i++)
        {
            if (i - runStart == count)
            {
                long first = _free[runStart];
                for (int j = 0; j < count; j++)
                {
                    _takenThisTransaction.Add(first + j);
                }

                _free.RemoveRange(runStart, count);
                return first;
            }

            if (i < _free.Count && _free[i] != _free[i - 1] + 1)
            {
                runStart = i;
            }
        }

        return -1;
    }

    public void Free(long txid, long firstPage, int count)
    {
        if (!_pending.TryGetValue(txid, out var ids))
        {
            ids = [];
            _pending.Add(txid, ids);
        }

        for (int i = 0; i < count; i++)
        {
            ids.Add(firstPage + i);
        }

        _pendingCount += count;
    }

    /// <summary>Undoes the allocations and frees of the transaction <paramref name="txid"/>.</summary>
    public void Rollback(long txid)
    {
        if (_pending.Remove(txid, out var ids))
        {
            _pendingCount -= ids.Count;
        }

        AddFree(_takenThisTransaction);
        _takenThisTransaction.Clear();
    }

    /// <summary>Every free and pending page id, sorted: what the freelist page stores.</summary>
    public List<long> Snapshot()
    {
        var all = new List<long>(_free.Count + (int)_pendingCount);
        all.AddRange(_free);
        foreach (var ids in _pending.Values)
        {
            all.AddRange(ids);
        }

        all.Sort();
        return all;
    }

    private void AddFree(List<long> ids)
    {
        if (ids.Count == 0)
        {
            return;
        }

        ids.Sort();
        var merged = new List<long>(_free.Count + ids.Count);
        int a = 0;
        int b = 0;
        while (a < _free.Count || b < ids.Count)
        {
            long next = b >= ids.Count || (a < _free.Count && _free[a] < ids[b]) ? _free[a++] : ids[b++];
            if (merged.Count > 0 && merged[^1] == next)
            {
                throw new InvariantViolationException($"B+tree freelist: page {next} freed twice.");
            }

            merged.Add(next);
        }

        _free.Clear();
        _free.AddRange(merged);
    }
}
