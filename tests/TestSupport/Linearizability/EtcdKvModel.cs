using System.Collections.Immutable;

namespace EmbeddedRaft.TestSupport.Linearizability;

/// <summary>
/// etcd's KV semantics as a sequential model, revisions included: every request is a transaction
/// (compares, then the success or the failure operations); a request that changes anything
/// creates exactly one new revision shared by all its writes, and a request that changes nothing
/// (reads, a delete of nothing) creates none; a put keeps the key's create revision and bumps its
/// version, a put of a missing key starts at version 1; reads see the writes made earlier in the
/// same transaction; the response carries the store's revision after the request. Revisions are
/// global, so the model does not partition: the whole history is checked as one.
/// </summary>
/// <remarks>
/// Not modelled: reads at a past revision, limits, prev_kv, leases, compaction; serializable reads are
/// not linearizable and must not be checked with it. Stateless and thread-safe.
/// </remarks>
public sealed class EtcdKvModel : ILinearizabilityModel<EtcdKvState, EtcdKvRequest, EtcdKvResponse>
{
    /// <summary>A model whose store starts empty at revision 1, as a new etcd cluster does.</summary>
    public static EtcdKvModel Instance { get; } = new(initialRevision: 1);

    /// <summary>A model whose store starts empty at <paramref name="initialRevision"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="initialRevision"/> is negative.</exception>
    public EtcdKvModel(long initialRevision)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(initialRevision);
        Initial = new EtcdKvState(initialRevision, ImmutableSortedDictionary.Create<string, EtcdKeyValue>(StringComparer.Ordinal));
    }

    /// <inheritdoc/>
    public EtcdKvState Initial { get; }

    /// <inheritdoc/>
    public IEqualityComparer<EtcdKvState> StateComparer => EqualityComparer<EtcdKvState>.Default;

    /// <summary>Runs <paramref name="request"/> on <paramref name="state"/>: the response etcd gives and the state it leaves.</summary>
    public static (EtcdKvResponse Response, EtcdKvState Next) Apply(EtcdKvState state, EtcdKvRequest request)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(request);
        bool succeeded = request.Compares.All(compare => Holds(state, compare));
        IReadOnlyList<EtcdKvOperation> operations = succeeded ? request.Success : request.Failure;
        long writeRevision = state.Revision + 1;
        ImmutableSortedDictionary<string, EtcdKeyValue> keys = state.Keys;
        bool changed = false;
        var results = new List<EtcdKvOperationResult>(operations.Count);
        foreach (EtcdKvOperation op in operations)
        {
            switch (op.Kind)
            {
                case EtcdKvOperationKind.Range:
                    results.Add(new EtcdKvOperationResult(InRange(keys, op).ToList(), 0));
                    break;
                case EtcdKvOperationKind.Put:
                    string value = op.Value ?? throw new ArgumentException($"A put of '{op.Key}' has no value.", nameof(request));
                    EtcdKeyValue put = keys.TryGetValue(op.Key, out EtcdKeyValue? old)
                        ? new EtcdKeyValue(op.Key, value, old.CreateRevision, writeRevision, old.Version + 1)
                        : new EtcdKeyValue(op.Key, value, writeRevision, writeRevision, 1);
                    keys = keys.SetItem(op.Key, put);
                    changed = true;
                    results.Add(EtcdKvOperationResult.PutDone);
                    break;
                case EtcdKvOperationKind.DeleteRange:
                    List<string> doomed = InRange(keys, op).Select(kv => kv.Key).ToList();
                    keys = keys.RemoveRange(doomed);
                    changed |= doomed.Count > 0;
                    results.Add(new EtcdKvOperationResult([], doomed.Count));
                    break;
                default:
                    throw new ArgumentOutOfRangeException(nameof(request), op.Kind, "Unknown etcd KV operation.");
            }
        }

        EtcdKvState next = changed ? new EtcdKvState(writeRevision, keys) : state;
        return (new EtcdKvResponse(next.Revision, succeeded, results), next);
    }

    /// <inheritdoc/>
    public bool Step(EtcdKvState state, EtcdKvRequest input, EtcdKvResponse? output, out EtcdKvState next)
    {
        (EtcdKvResponse expected, next) = Apply(state, input);
        return output is null || expected.Equals(output);
    }

    /// <inheritdoc/>
    public string? PartitionKey(EtcdKvRequest input) => null;

    /// <inheritdoc/>
    public string Describe(EtcdKvRequest input, EtcdKvResponse? output)
    {
        ArgumentNullException.ThrowIfNull(input);
        return $"{input} -> {(output is null ? "? (indeterminate)" : output.ToString())}";
    }

    /// <inheritdoc/>
    public string DescribeState(EtcdKvState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        return state.ToString();
    }

    private static IEnumerable<EtcdKeyValue> InRange(ImmutableSortedDictionary<string, EtcdKeyValue> keys, EtcdKvOperation op)
    {
        if (op.RangeEnd is null)
        {
            return keys.TryGetValue(op.Key, out EtcdKeyValue? kv) ? [kv] : [];
        }

        bool toEnd = op.RangeEnd == "\0";
        return keys.Values.Where(kv =>
            string.CompareOrdinal(kv.Key, op.Key) >= 0 && (toEnd || string.CompareOrdinal(kv.Key, op.RangeEnd) < 0));
    }

    private static bool Holds(EtcdKvState state, EtcdCompare compare)
    {
        if (!state.Keys.TryGetValue(compare.Key, out EtcdKeyValue? kv))
        {
            // etcd: a value compare on a missing key is always false; the others compare against zero.
            if (compare.Target == EtcdCompareTarget.Value)
            {
                return false;
            }

            kv = new EtcdKeyValue(compare.Key, "", 0, 0, 0);
        }

        int order = compare.Target switch
        {
            EtcdCompareTarget.Value => string.CompareOrdinal(kv.Value, compare.Value ?? ""),
            EtcdCompareTarget.Version => kv.Version.CompareTo(compare.Number),
            EtcdCompareTarget.CreateRevision => kv.CreateRevision.CompareTo(compare.Number),
            _ => kv.ModRevision.CompareTo(compare.Number),
        };
        return compare.Result switch
        {
            EtcdCompareResult.Equal => order == 0,
            EtcdCompareResult.NotEqual => order != 0,
            EtcdCompareResult.Greater => order > 0,
            _ => order < 0,
        };
    }
}
