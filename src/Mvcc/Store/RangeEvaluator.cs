using EmbeddedRaft.Mvcc.Index;

namespace EmbeddedRaft.Mvcc.Store;

/// <summary>
/// A range request answered from the index and a value source, exactly as etcd's
/// <c>applierV3backend.Range</c> over <c>mvcc.rangeKeys</c>: fetch one more than the limit (or
/// everything when sorting or filtering), filter by mod/create revision, sort (stable, so ties stay
/// in key order, as Go's sort on small results), cut at the limit and say so in More; Count is the
/// number of keys in the range before filters and limit.
/// </summary>
internal static class RangeEvaluator
{
    /// <summary>The revision of <paramref name="key"/> visible at <paramref name="atMain"/> (a single-key range); false when it had none then.</summary>
    public static bool TryFindSingle(KeyIndex index, ReadOnlySpan<byte> key, long atMain, out Revision modified) =>
        index.TryGet(key, atMain, out modified, out _, out _);

    /// <summary>The revisions of the keys of a range visible at <paramref name="atMain"/>, in key order, up to <paramref name="limit"/> (0: all), and how many there are in all.</summary>
    public static (List<Revision> Revisions, long Count) Collect(KeyIndex index, ReadOnlySpan<byte> key, ReadOnlySpan<byte> rangeEnd, long atMain, long limit, bool countOnly)
    {
        if (rangeEnd.IsEmpty)
        {
            // The common single-key read, without the visitor's allocations.
            return index.TryGet(key, atMain, out var only, out _, out _)
                ? (countOnly ? [] : [only], 1)
                : ([], 0);
        }

        var revisions = new List<Revision>();
        long count = 0;
        index.Visit(key, rangeEnd, atMain, modified =>
        {
            count++;
            if (!countOnly && (limit <= 0 || revisions.Count < limit))
            {
                revisions.Add(modified);
            }

            return true;
        });
        return (revisions, count);
    }

    /// <summary>The limit to fetch with: 0 (all) when sorting or filtering, else one more than asked to learn More.</summary>
    public static long FetchLimit(RangeRequest request)
    {
        if (request.SortOrder != SortOrder.None || request.MinModRevision != 0 || request.MaxModRevision != 0
            || request.MinCreateRevision != 0 || request.MaxCreateRevision != 0)
        {
            return 0;
        }

        return request.Limit > 0 ? request.Limit + 1 : 0;
    }

    /// <summary>
    /// The response of a single-key range (no range end) whose key had <paramref name="found"/> as
    /// its revision at the revision read (null: none), exactly as <see cref="Finish(RangeRequest, List{Revision}, long, ResponseHeader, ValueSource)"/>
    /// would build it from a one-revision list, without the lists: with one key there is nothing to
    /// sort or cut (a limit is at least 1), and a keys-only read sorted by value drops the value anyway.
    /// </summary>
    public static RangeResponse FinishSingle(RangeRequest request, Revision? found, ResponseHeader header, ValueSource? values)
    {
        if (found is not { } revision || request.CountOnly)
        {
            return new RangeResponse { Header = header, Kvs = [], Count = found is null ? 0 : 1 };
        }

        return FinishSingleRead(request, values!.Read(revision, request.KeysOnly), header);
    }

    /// <summary>The response of a single-key range whose key-value <paramref name="kv"/> was read (not count only), its filters applied.</summary>
    public static RangeResponse FinishSingleRead(RangeRequest request, KeyValue kv, ResponseHeader header)
    {
        bool filtered = (request.MaxModRevision != 0 && kv.ModRevision > request.MaxModRevision)
            || (request.MinModRevision != 0 && kv.ModRevision < request.MinModRevision)
            || (request.MaxCreateRevision != 0 && kv.CreateRevision > request.MaxCreateRevision)
            || (request.MinCreateRevision != 0 && kv.CreateRevision < request.MinCreateRevision);
        return new RangeResponse { Header = header, Kvs = filtered ? [] : [kv], Count = 1 };
    }

    /// <summary>Builds the response from collected revisions (values read through <paramref name="values"/>), its header carrying only <paramref name="headerRevision"/>.</summary>
    public static RangeResponse Finish(RangeRequest request, List<Revision> revisions, long count, long headerRevision, ValueSource values) =>
        Finish(request, revisions, count, new ResponseHeader { Revision = headerRevision }, values);

    /// <summary>Builds the response from collected revisions (values read through <paramref name="values"/>).</summary>
    public static RangeResponse Finish(RangeRequest request, List<Revision> revisions, long count, ResponseHeader header, ValueSource values)
    {
        if (request.CountOnly)
        {
            return new RangeResponse { Header = header, Kvs = [], Count = count };
        }

        // A keys-only range sorted by value still sorts by the values, as etcd's (it drops them last).
        bool dropValuesLast = request.KeysOnly && request.SortTarget == SortTarget.Value;
        var kvs = new List<KeyValue>(revisions.Count);
        foreach (var revision in revisions)
        {
            kvs.Add(values.Read(revision, request.KeysOnly && !dropValuesLast));
        }

        if (request.MaxModRevision != 0)
        {
            kvs.RemoveAll(kv => kv.ModRevision > request.MaxModRevision);
        }

        if (request.MinModRevision != 0)
        {
            kvs.RemoveAll(kv => kv.ModRevision < request.MinModRevision);
        }

        if (request.MaxCreateRevision != 0)
        {
            kvs.RemoveAll(kv => kv.CreateRevision > request.MaxCreateRevision);
        }

        if (request.MinCreateRevision != 0)
        {
            kvs.RemoveAll(kv => kv.CreateRevision < request.MinCreateRevision);
        }

        var order = request.SortOrder;
        if (request.SortTarget != SortTarget.Key && order == SortOrder.None)
        {
            // etcd: results are already in key order, so only another target sorts by default (ascending).
            order = SortOrder.Ascend;
        }

        if (order != SortOrder.None)
        {
            kvs = Sort(kvs, request.SortTarget, order == SortOrder.Descend);
        }

        bool more = false;
        if (request.Limit > 0 && kvs.Count > request.Limit)
        {
            kvs.RemoveRange((int)request.Limit, kvs.Count - (int)request.Limit);
            more = true;
        }

        if (dropValuesLast)
        {
            kvs = kvs.ConvertAll(kv => new KeyValue { Key = kv.Key, CreateRevision = kv.CreateRevision, ModRevision = kv.ModRevision, Version = kv.Version, Lease = kv.Lease });
        }

        return new RangeResponse { Header = header, Kvs = kvs, More = more, Count = count };
    }

    private static List<KeyValue> Sort(List<KeyValue> kvs, SortTarget target, bool descending)
    {
        Comparison<KeyValue> compare = target switch
        {
            SortTarget.Key => (a, b) => a.Key.Span.SequenceCompareTo(b.Key.Span),
            SortTarget.Version => (a, b) => a.Version.CompareTo(b.Version),
            SortTarget.Create => (a, b) => a.CreateRevision.CompareTo(b.CreateRevision),
            SortTarget.Mod => (a, b) => a.ModRevision.CompareTo(b.ModRevision),
            SortTarget.Value => (a, b) => a.Value.Span.SequenceCompareTo(b.Value.Span),
            _ => throw new InvariantViolationException($"MVCC range: sort target {target} passed validation."),
        };

        // Stable (LINQ's OrderBy is), so equal elements keep key order in both directions.
        return descending
            ? [.. kvs.OrderByDescending(kv => kv, Comparer<KeyValue>.Create(compare))]
            : [.. kvs.OrderBy(kv => kv, Comparer<KeyValue>.Create(compare))];
    }
}
