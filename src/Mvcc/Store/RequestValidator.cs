using System.Text;

namespace EmbeddedRaft.Mvcc.Store;

/// <summary>
/// The checks etcd's gRPC layer makes before a request reaches the store (v3rpc/key.go:
/// <c>checkRangeRequest</c>, <c>checkPutRequest</c>, <c>checkDeleteRequest</c>,
/// <c>checkTxnRequest</c>, <c>checkIntervals</c>), in etcd's order and with its errors, plus this
/// library's own refusals of negative limits and revisions and of undefined enum values
/// (<see cref="ArgumentException"/>s, since etcd has no error for them). Nothing here reads the store.
/// </summary>
internal static class RequestValidator
{
    public static void CheckRange(RangeRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Key.IsEmpty)
        {
            throw new MvccException(MvccError.EmptyKey);
        }

        if (!Enum.IsDefined(request.SortOrder) || !Enum.IsDefined(request.SortTarget))
        {
            throw new MvccException(MvccError.InvalidSortOption);
        }

        if (request.Limit < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(request), request.Limit, "RangeRequest.Limit must not be negative (0 means no limit).");
        }

        if (request.Revision < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(request), request.Revision, "RangeRequest.Revision must not be negative (0 means the current revision).");
        }

        if (request.MinModRevision < 0 || request.MaxModRevision < 0 || request.MinCreateRevision < 0 || request.MaxCreateRevision < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(request), "RangeRequest's Min/Max Mod/Create revisions must not be negative (0 means no bound).");
        }
    }

    public static void CheckPut(PutRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Key.IsEmpty)
        {
            throw new MvccException(MvccError.EmptyKey);
        }

        if (request.IgnoreValue && !request.Value.IsEmpty)
        {
            throw new MvccException(MvccError.ValueProvided);
        }

        if (request.IgnoreLease && request.Lease != 0)
        {
            throw new MvccException(MvccError.LeaseProvided);
        }
    }

    public static void CheckDeleteRange(DeleteRangeRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Key.IsEmpty)
        {
            throw new MvccException(MvccError.EmptyKey);
        }
    }

    /// <summary>etcd's <c>checkTxnRequest</c> then <c>checkIntervals</c> on both branches.</summary>
    public static void CheckTxn(TxnRequest request, int maxTxnOps)
    {
        ArgumentNullException.ThrowIfNull(request);
        CheckTxnShape(request, maxTxnOps);
        CheckIntervals(request.Success);
        CheckIntervals(request.Failure);
    }

    private static void CheckTxnShape(TxnRequest request, int maxTxnOps)
    {
        if (request.Compare is null || request.Success is null || request.Failure is null)
        {
            throw new ArgumentException("TxnRequest.Compare, Success and Failure must not be null (use empty lists).", nameof(request));
        }

        int opCount = Math.Max(request.Compare.Count, Math.Max(request.Success.Count, request.Failure.Count));
        if (opCount > maxTxnOps)
        {
            throw new MvccException(MvccError.TooManyOps);
        }

        foreach (var compare in request.Compare)
        {
            if (compare is null)
            {
                throw new ArgumentException("TxnRequest.Compare holds a null entry.", nameof(request));
            }

            if (compare.Key.IsEmpty)
            {
                throw new MvccException(MvccError.EmptyKey);
            }

            if (!Enum.IsDefined(compare.Result) || !Enum.IsDefined(compare.Target))
            {
                throw new ArgumentOutOfRangeException(nameof(request), $"A Compare has an undefined Result ({compare.Result}) or Target ({compare.Target}).");
            }
        }

        // As etcd, a nested transaction may use what its parent left of the budget.
        foreach (var op in request.Success)
        {
            CheckOp(op, maxTxnOps - opCount);
        }

        foreach (var op in request.Failure)
        {
            CheckOp(op, maxTxnOps - opCount);
        }
    }

    private static void CheckOp(RequestOp op, int maxTxnOps)
    {
        switch (op)
        {
            case { RequestRange: { } range }:
                CheckRange(range);
                break;
            case { RequestPut: { } put }:
                CheckPut(put);
                break;
            case { RequestDeleteRange: { } delete }:
                CheckDeleteRange(delete);
                break;
            case { RequestTxn: { } txn }:
                CheckTxnShape(txn, maxTxnOps);
                break;
            default:
                // etcd answers an empty operation with "key not found".
                throw new MvccException(MvccError.KeyNotFound);
        }
    }

    /// <summary>
    /// etcd's <c>checkIntervals</c>: no key may be put twice, or put and deleted, in what one
    /// branch can run, counting nested transactions (whose two branches exclude each other). Delete
    /// ranges are etcd's "affine" intervals: an empty end is a point; the end "\0" is taken
    /// literally (so a from-key delete overlaps nothing, as in etcd).
    /// </summary>
    private static (HashSet<string> Puts, List<Interval> Deletes) CheckIntervals(IReadOnlyList<RequestOp> ops)
    {
        var deletes = new List<Interval>();
        foreach (var op in ops)
        {
            if (op.RequestDeleteRange is { } delete)
            {
                deletes.Add(delete.RangeEnd.IsEmpty ? Interval.Point(delete.Key.Span) : new Interval(Latin1(delete.Key.Span), Latin1(delete.RangeEnd.Span)));
            }
        }

        var puts = new HashSet<string>(StringComparer.Ordinal);
        foreach (var op in ops)
        {
            if (op.RequestTxn is not { } txn)
            {
                continue;
            }

            var (putsThen, deletesThen) = CheckIntervals(txn.Success);
            var (putsElse, deletesElse) = CheckIntervals(txn.Failure);
            foreach (string key in putsThen)
            {
                if (puts.Contains(key) || Intersects(deletes, key))
                {
                    throw new MvccException(MvccError.DuplicateKey);
                }

                puts.Add(key);
            }

            foreach (string key in putsElse)
            {
                // A key put by the then-branch too is fine: only one of the two runs.
                if ((puts.Contains(key) && !putsThen.Contains(key)) || Intersects(deletes, key))
                {
                    throw new MvccException(MvccError.DuplicateKey);
                }

                puts.Add(key);
            }

            deletes.AddRange(deletesThen);
            deletes.AddRange(deletesElse);
        }

        foreach (var op in ops)
        {
            if (op.RequestPut is not { } put)
            {
                continue;
            }

            string key = Latin1(put.Key.Span);
            if (puts.Contains(key) || Intersects(deletes, key))
            {
                throw new MvccException(MvccError.DuplicateKey);
            }

            puts.Add(key);
        }

        return (puts, deletes);
    }

    private static bool Intersects(List<Interval> deletes, string key)
    {
        var point = Interval.Point(key);
        foreach (var delete in deletes)
        {
            if (delete.Overlaps(point))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>One char per byte, so ordinal string order is byte order.</summary>
    private static string Latin1(ReadOnlySpan<byte> bytes) => Encoding.Latin1.GetString(bytes);

    /// <summary>etcd's adt interval over <c>StringAffineComparable</c>: [Begin, End), where an empty End is +infinity.</summary>
    private readonly record struct Interval(string Begin, string End)
    {
        public static Interval Point(ReadOnlySpan<byte> key) => Point(Latin1(key));

        public static Interval Point(string key) => new(key, key + "\0");

        public bool Overlaps(Interval other) => Compare(Begin, other.End) < 0 && Compare(other.Begin, End) < 0;

        private static int Compare(string a, string b)
        {
            if (a.Length == 0)
            {
                return b.Length == 0 ? 0 : 1;
            }

            return b.Length == 0 ? -1 : string.CompareOrdinal(a, b);
        }
    }
}
