namespace EmbeddedRaft.Storage.BTree;

/// <summary>
/// Free pages of the file, owned by the writer (only the writer thread touches it).
/// </summary>
/// <remarks>
/// <para>A page freed by transaction F is still reachable from every snapshot older than F, so it goes to
/// a pending list tagged with F and becomes allocatable only once F &lt;= the oldest open reader's
/// snapshot and F &lt;= the last durable transaction (so that a crash, which falls back to the durable
/// meta page, never finds one of its pages overwritten by a later, unsynced commit).</para>
/// <para>Where a transaction's pages go decides what its commit costs: every run of adjacent pages is one
/// write call and, worse, one separate device request when the file is flushed (measured on the
/// benchmark VM: about 8 us per run on top of the bytes, against about 1.3 us per page written in
/// one long run). Copy-on-write frees pages all over the file, so single pages are handed out
/// from the longest free runs first, and a free page with no free neighbour is left alone (the file
/// grows instead) while free pages are under <see cref="MaxFreeFractionBeforeLonePages"/> of the file:
/// left alone, its neighbours are soon freed too and it becomes part of a run.</para>
/// <para>The freelist run itself is the one multi-page run every synced commit writes (a NoSync commit writes none), and it must not lose its
/// place to single pages: taken from the longest runs first, they used to eat the run the previous
/// freelist had left, so each commit's (larger) freelist went to the end of the file and freed the
/// old one for the next commit's single pages to eat again; the file grew without bound (94% free at
/// 1 KiB pages). So each transaction first sets aside, for its freelist, the tail of the free run
/// that fits <see cref="BeginTransaction"/>'s reservation best; single pages and other runs never
/// touch it. The freelist run's length only doubles or shrinks to a quarter (<see cref="RunCapacityPages"/>),
/// so the run the freelist left two commits ago, released by then, always fits: the file grows for
/// the freelist only when its capacity has just doubled. docs/btree.md (Where pages go) states the
/// bound this gives.</para>
/// <para>Allocations only mark pages taken (a prefix of each free run, see <see cref="FreeRun"/>);
/// <see cref="CommitTransaction"/> removes them from <see cref="_free"/>, and a rollback forgets the
/// marks, so a failed or abandoned transaction leaves the free pages exactly as they were.</para>
/// Invariants: <see cref="_free"/> is sorted ascending and holds no duplicates; between transactions
/// no page is marked taken.
/// </remarks>
internal sealed class Freelist
{
    /// <summary>Shortest run single pages are taken from while the file may still grow instead.</summary>
    public const int PreferredRunPages = 2;

    /// <summary>
    /// Free (and pending) pages, as a fraction of the file, above which lone free pages are used
    /// rather than growing the file: bounds the space the preference for runs can cost.
    /// </summary>
    public const double MaxFreeFractionBeforeLonePages = 0.125;

    private readonly List<long> _free = [];
    private readonly SortedDictionary<long, List<long>> _pending = [];

    /// <summary>The runs of adjacent pages of <see cref="_free"/>, in page order; built on the transaction's
    /// first allocation. Invariant: each free page lies in exactly one run.</summary>
    private readonly List<FreeRun> _runs = [];

    /// <summary>Indexes into <see cref="_runs"/> in the order pages are taken: longest run first, lowest page first among equals.</summary>
    private readonly List<int> _allocationOrder = [];
    private bool _planned;
    private int _reservePages;

    /// <summary>Index into <see cref="_runs"/> of the run whose tail is set aside for the freelist, or -1.</summary>
    private int _reservedRun = -1;
    private int _nextRun;
    private int _takenCount;
    private long _pendingCount;

    /// <summary>Free pages not taken by the current transaction.</summary>
    public int FreeCount => _free.Count - _takenCount;

    public long PendingCount => _pendingCount;

    public long TotalCount => FreeCount + _pendingCount;

    public void Load(IEnumerable<long> ids)
    {
        _free.Clear();
        _free.AddRange(ids);
        _free.Sort();
        _pending.Clear();
        _pendingCount = 0;
        ForgetTaken();
    }

    /// <summary>Makes pages freed by transactions up to <paramref name="txid"/> allocatable. Called between transactions.</summary>
    public void Release(long txid)
    {
        if (_takenCount != 0 || _planned)
        {
            throw new InvariantViolationException("B+tree freelist: pages released while a transaction holds allocations.");
        }

        List<long>? released = null;
        List<long>? releasedBy = null;
        foreach (var (freedBy, ids) in _pending)
        {
            if (freedBy > txid)
            {
                break;
            }

            released ??= [];
            released.AddRange(ids);
            (releasedBy ??= []).Add(freedBy);
        }

        if (released is null)
        {
            return;
        }

        foreach (long freedBy in releasedBy!)
        {
            _pending.Remove(freedBy);
        }

        _pendingCount -= released.Count;
        AddFree(released);
    }

    /// <summary>
    /// Starts a transaction's allocations. <paramref name="freelistReservePages"/> pages (0: none) of
    /// the best-fitting free run are set aside for the freelist run (<see cref="TryTakeFreelistReserve"/>)
    /// and kept from every other allocation.
    /// </summary>
    public void BeginTransaction(int freelistReservePages = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(freelistReservePages);
        ForgetTaken();
        _reservePages = freelistReservePages;
    }

    /// <summary>
    /// The length to give a freelist run that needs <paramref name="neededPages"/> when the previous
    /// one had <paramref name="previousPages"/>: the previous length while the need fits it and is more
    /// than a quarter of it, else the need rounded up to a power of two. So the length changes rarely
    /// (doubling, or shrinking to a quarter or less), and the run the freelist left behind fits the next one.
    /// </summary>
    public static int RunCapacityPages(int neededPages, int previousPages)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(neededPages, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(previousPages);
        if (neededPages <= previousPages && neededPages > previousPages / 4)
        {
            return previousPages;
        }

        return (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)neededPages);
    }

    /// <summary>
    /// Takes the pages set aside for the freelist when there are at least <paramref name="neededPages"/>
    /// of them: returns the first page and sets <paramref name="pages"/> to how many were taken (all
    /// of the reserve, so the run keeps its length); else returns -1 and takes nothing.
    /// </summary>
    public long TryTakeFreelistReserve(int neededPages, out int pages)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(neededPages, 1);
        pages = 0;
        PlanRuns();
        if (_reservedRun < 0)
        {
            return -1;
        }

        ref var run = ref System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_runs)[_reservedRun];
        if (run.Reserved < neededPages || run.ReserveTaken)
        {
            return -1;
        }

        if (run.Taken + run.Reserved > run.Length)
        {
            throw new InvariantViolationException("B+tree freelist: pages taken from the front of a run reach into its reserve.");
        }

        run.ReserveTaken = true;
        _takenCount += run.Reserved;
        pages = run.Reserved;
        return _free[run.Start + run.Length - run.Reserved];
    }

    /// <summary>
    /// Takes <paramref name="count"/> contiguous free pages, or returns -1 when the caller should
    /// take them from the end of the file instead (no such run, or, for a single page, only lone free
    /// pages are left while free pages are a small part of the file).
    /// </summary>
    /// <param name="count">Pages wanted, at least 1.</param>
    /// <param name="pageCount">The file's high-water mark as the transaction has moved it.</param>
    public long TryAllocate(int count, long pageCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        if (FreeCount < count)
        {
            return -1;
        }

        PlanRuns();
        var runs = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_runs);
        var order = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_allocationOrder);
        if (count == 1)
        {
            while (_nextRun < order.Length && runs[order[_nextRun]].Remaining == 0)
            {
                _nextRun++;
            }

            if (_nextRun == order.Length)
            {
                return -1;
            }

            ref var run = ref runs[order[_nextRun]];
            if (run.Available < PreferredRunPages && TotalCount < MaxFreeFractionBeforeLonePages * pageCount)
            {
                return -1;
            }

            return Take(ref run, 1);
        }

        // Runs are longest first: the first one with room wastes the least of the long runs' order.
        for (int i = 0; i < order.Length && runs[order[i]].Available >= count; i++)
        {
            if (runs[order[i]].Remaining >= count)
            {
                return Take(ref runs[order[i]], count);
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

    /// <summary>The transaction committed: the pages it took leave the free list for good.</summary>
    public void CommitTransaction()
    {
        if (_takenCount > 0)
        {
            // Taken pages are a prefix of each run: keep the rest of every run, in page order.
            int kept = 0;
            foreach (var run in _runs)
            {
                for (int i = run.Start + run.Taken; i < run.KeptEnd; i++)
                {
                    _free[kept++] = _free[i];
                }
            }

            if (kept != _free.Count - _takenCount)
            {
                throw new InvariantViolationException("B+tree freelist: taken pages do not add up.");
            }

            _free.RemoveRange(kept, _free.Count - kept);
        }

        ForgetTaken();
    }

    /// <summary>Undoes the allocations and frees of the transaction <paramref name="txid"/>.</summary>
    public void Rollback(long txid)
    {
        if (_pending.Remove(txid, out var ids))
        {
            _pendingCount -= ids.Count;
        }

        ForgetTaken();
    }

    /// <summary>Every free (not taken) and pending page id, sorted: what the freelist page stores.</summary>
    public List<long> Snapshot()
    {
        var all = new List<long>(FreeCount + (int)_pendingCount);
        if (_takenCount == 0)
        {
            all.AddRange(_free);
        }
        else
        {
            foreach (var run in _runs)
            {
                for (int i = run.Start + run.Taken; i < run.KeptEnd; i++)
                {
                    all.Add(_free[i]);
                }
            }
        }

        foreach (var ids in _pending.Values)
        {
            all.AddRange(ids);
        }

        all.Sort();
        return all;
    }

    private long Take(ref FreeRun run, int count)
    {
        long first = _free[run.Start + run.Taken];
        run.Taken += count;
        _takenCount += count;
        return first;
    }

    /// <summary>Splits <see cref="_free"/> into runs of adjacent pages, longest first (lowest page first among equals).</summary>
    private void PlanRuns()
    {
        if (_planned)
        {
            return;
        }

        _planned = true;
        _runs.Clear();
        int start = 0;
        for (int i = 1; i <= _free.Count; i++)
        {
            if (i == _free.Count || _free[i] != _free[i - 1] + 1)
            {
                _runs.Add(new FreeRun { Start = start, Length = i - start });
                start = i;
            }
        }

        // The freelist's reserve: the tail of the shortest run that holds it (lowest page among
        // equals), so the long runs stay whole for single pages and the run the freelist left two
        // commits ago, of exactly the reserve's length when nothing next to it was freed, is chosen.
        if (_reservePages > 0)
        {
            for (int i = 0; i < _runs.Count; i++)
            {
                if (_runs[i].Length >= _reservePages && (_reservedRun < 0 || _runs[i].Length < _runs[_reservedRun].Length))
                {
                    _reservedRun = i;
                }
            }

            if (_reservedRun >= 0)
            {
                System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_runs)[_reservedRun].Reserved = _reservePages;
            }
        }

        _allocationOrder.Clear();
        for (int i = 0; i < _runs.Count; i++)
        {
            if (_runs[i].Available > 0)
            {
                _allocationOrder.Add(i);
            }
        }

        System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_allocationOrder).Sort(new LongestRunFirst(_runs));
    }

    private void ForgetTaken()
    {
        _runs.Clear();
        _allocationOrder.Clear();
        _planned = false;
        _reservePages = 0;
        _reservedRun = -1;
        _nextRun = 0;
        _takenCount = 0;
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

    /// <summary>Orders run indexes longest run first, then lowest page first (a struct comparer: no delegate call per comparison).</summary>
    private readonly struct LongestRunFirst(List<FreeRun> runs) : IComparer<int>
    {
        public int Compare(int x, int y)
        {
            var a = runs[x];
            var b = runs[y];
            return a.Available != b.Available ? b.Available.CompareTo(a.Available) : a.Start.CompareTo(b.Start);
        }
    }

    /// <summary>
    /// A run of adjacent free pages: <see cref="_free"/>[Start..Start+Length). Pages are taken from its
    /// front, so the taken ones are always [Start..Start+Taken); its last <see cref="Reserved"/> pages
    /// are the freelist's reserve, never taken from the front. Invariant: Taken + Reserved &lt;= Length.
    /// </summary>
    private struct FreeRun
    {
        public int Start;
        public int Length;
        public int Taken;
        public int Reserved;
        public bool ReserveTaken;

        /// <summary>Pages other allocations may take from this run: all but the reserve.</summary>
        public readonly int Available => Length - Reserved;

        public readonly int Remaining => Length - Reserved - Taken;

        /// <summary>End (exclusive, in <see cref="_free"/>) of the pages still free after the transaction.</summary>
        public readonly int KeptEnd => Start + Length - (ReserveTaken ? Reserved : 0);
    }
}
