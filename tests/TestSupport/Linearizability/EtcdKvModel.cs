using System.Collections.Immutable;

namespace EmbeddedRaft.TestSupport.Linearizability;

/// <summary>
/// etcd's KV, lease and compaction semantics as a sequential model, revisions included: every KV request
/// is a transaction (compares, then the success or the failure operations); a request that changes
/// any key creates exactly one new revision shared by all its writes, and a request that changes none
/// (reads, a delete of nothing, lease grants and keep-alives, a revoke of a lease without keys,
/// compaction) creates none; a put keeps the key's create revision and bumps its version, a put of a
/// missing key starts at version 1; reads see the writes made earlier in the same transaction; the
/// response carries the store's revision after the request. Revisions are global, so the model does
/// not partition: the whole history is checked as one (split it at quiescent points with
/// <see cref="HistoryWindows"/>).
/// </summary>
/// <remarks>
/// <para>Reads: at the current revision or, in a model that keeps history, at a past one (below the
/// compact revision: <see cref="EtcdKvError.Compacted"/>; above the current: <see cref="EtcdKvError.FutureRevision"/>;
/// below the revision the model's history starts at: not checkable, so any answer is accepted); limit
/// with count and more, keys-only, count-only. Puts and deletes with prev_kv. Leases: grant with a
/// client-chosen id (a TTL below <see cref="MinLeaseTtlSeconds"/> is raised to it, as the store does),
/// put with a lease (an unknown lease fails the whole request), revoke (the lease's keys deleted at one
/// revision), keep-alive (an unknown lease: not found). Expiry is nondeterministic: record it as an
/// indeterminate <see cref="EtcdKvRequest.LeaseExpiry"/> invoked with the grant, so the checker may
/// revoke the lease spontaneously at any point after its grant, or never (sound: it never rejects a
/// correct history, and the revision it takes is still pinned by every later response).</para>
/// <para>Not modelled: sort orders, min/max revision filters, ignore_value/ignore_lease, lease
/// time-to-live and listing; serializable reads are not linearizable and must not be checked with it.
/// Stateless and thread-safe.</para>
/// </remarks>
public sealed class EtcdKvModel : ILinearizabilityModel<EtcdKvState, EtcdKvRequest, EtcdKvResponse>
{
    /// <summary>The store's default minimum lease TTL (LeaseOptions.DefaultMinTtlSeconds).</summary>
    public const long DefaultMinLeaseTtlSeconds = 2;

    /// <summary>A model whose store starts empty at revision 1, as a new etcd cluster does, without history (no past reads).</summary>
    public static EtcdKvModel Instance { get; } = new(initialRevision: 1);

    /// <summary>A model whose store starts empty at revision 1 and that keeps history, so reads at past revisions are checked.</summary>
    public static EtcdKvModel WithHistory { get; } = new(EtcdKvState.Create(1), keepHistory: true);

    /// <summary>A model whose store starts empty at <paramref name="initialRevision"/>, without history.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="initialRevision"/> is negative.</exception>
    public EtcdKvModel(long initialRevision)
        : this(EtcdKvState.Create(initialRevision), keepHistory: false)
    {
    }

    /// <summary>A model whose store starts in <paramref name="initial"/> (its own history, if any, is dropped).</summary>
    /// <param name="initial">The start state, e.g. a window's (<see cref="HistoryWindows"/>).</param>
    /// <param name="keepHistory">Whether states keep the keys of past revisions, so reads at a past revision can be checked (costs memoization: states that differ only in their past are distinct).</param>
    /// <param name="minLeaseTtlSeconds">The store's minimum lease TTL (LeaseOptions.MinTtlSeconds).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="minLeaseTtlSeconds"/> is below 1.</exception>
    public EtcdKvModel(EtcdKvState initial, bool keepHistory, long minLeaseTtlSeconds = DefaultMinLeaseTtlSeconds)
    {
        ArgumentNullException.ThrowIfNull(initial);
        ArgumentOutOfRangeException.ThrowIfLessThan(minLeaseTtlSeconds, 1);
        KeepsHistory = keepHistory;
        MinLeaseTtlSeconds = minLeaseTtlSeconds;
        Initial = initial.Past is null ? initial : new EtcdKvState(initial.Revision, initial.CompactRevision, initial.Keys, initial.Leases, past: null);
    }

    /// <inheritdoc/>
    public EtcdKvState Initial { get; }

    /// <summary>Whether reads at past revisions are checked (see the constructor).</summary>
    public bool KeepsHistory { get; }

    /// <summary>The minimum lease TTL a grant is raised to.</summary>
    public long MinLeaseTtlSeconds { get; }

    /// <inheritdoc/>
    public IEqualityComparer<EtcdKvState> StateComparer => EqualityComparer<EtcdKvState>.Default;

    /// <summary>Runs <paramref name="request"/> on <paramref name="state"/>: the response etcd gives and the state it leaves.</summary>
    /// <exception cref="ArgumentException">The request is malformed (a lease call inside a transaction, a grant without an id, a past read on a model without history).</exception>
    /// <exception cref="InvalidOperationException">The request reads below the state's history, where the answer is unknown.</exception>
    public (EtcdKvResponse Response, EtcdKvState Next) Apply(EtcdKvState state, EtcdKvRequest request)
    {
        (EtcdKvResponse? response, EtcdKvState next) = Evaluate(state, request);
        return (response ?? throw new InvalidOperationException($"'{request}' reads below the history of {state}: its answer is unknown."), next);
    }

    /// <inheritdoc/>
    public bool Step(EtcdKvState state, EtcdKvRequest input, EtcdKvResponse? output, out EtcdKvState next)
    {
        (EtcdKvResponse? expected, next) = Evaluate(state, input);
        return output is null || expected is null || expected.Equals(output);
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

    /// <summary>The response (null: unknown, a read below the history) and the next state.</summary>
    private (EtcdKvResponse? Response, EtcdKvState Next) Evaluate(EtcdKvState state, EtcdKvRequest request)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(request);
        if (request.IsSingleCall)
        {
            return (SingleCall(state, request.Success[0]), SingleCallNext(state, request.Success[0]));
        }

        bool succeeded = request.Compares.All(compare => Holds(state, compare));
        IReadOnlyList<EtcdKvOperation> operations = succeeded ? request.Success : request.Failure;
        if (Refusal(state, operations) is EtcdKvError error)
        {
            return (EtcdKvResponse.Failure(error), state);
        }

        long writeRevision = state.Revision + 1;
        ImmutableSortedDictionary<string, EtcdKeyValue> keys = state.Keys;
        bool changed = false;
        bool known = true;
        var results = new List<EtcdKvOperationResult>(operations.Count);
        foreach (EtcdKvOperation op in operations)
        {
            switch (op.Kind)
            {
                case EtcdKvOperationKind.Range:
                    ImmutableSortedDictionary<string, EtcdKeyValue>? seen = op.Revision == 0 ? keys : state.KeysAt(op.Revision);
                    if (seen is null)
                    {
                        known = false;
                        results.Add(EtcdKvOperationResult.PutDone);
                    }
                    else
                    {
                        results.Add(Read(seen, op));
                    }

                    break;
                case EtcdKvOperationKind.Put:
                    string value = op.Value ?? throw new ArgumentException($"A put of '{op.Key}' has no value.", nameof(request));
                    bool existed = keys.TryGetValue(op.Key, out EtcdKeyValue? old);
                    EtcdKeyValue put = existed
                        ? new EtcdKeyValue(op.Key, value, old!.CreateRevision, writeRevision, old.Version + 1, op.Lease)
                        : new EtcdKeyValue(op.Key, value, writeRevision, writeRevision, 1, op.Lease);
                    keys = keys.SetItem(op.Key, put);
                    changed = true;
                    results.Add(op.PrevKv && existed ? EtcdKvOperationResult.PutDone with { PrevKvs = [old!] } : EtcdKvOperationResult.PutDone);
                    break;
                case EtcdKvOperationKind.DeleteRange:
                    List<EtcdKeyValue> doomed = InRange(keys, op).ToList();
                    keys = keys.RemoveRange(doomed.Select(kv => kv.Key));
                    changed |= doomed.Count > 0;
                    results.Add(new EtcdKvOperationResult([], doomed.Count) { PrevKvs = op.PrevKv ? doomed : [] });
                    break;
                default:
                    throw new ArgumentException($"'{op}' must be alone in its request, not part of a transaction.", nameof(request));
            }
        }

        EtcdKvState next = changed ? Advance(state, writeRevision, keys, state.Leases) : state;
        return (known ? new EtcdKvResponse(next.Revision, succeeded, results) : null, next);
    }

    /// <summary>etcd's checks before a transaction applies (checkPut, then checkRange): an error refuses it whole.</summary>
    private EtcdKvError? Refusal(EtcdKvState state, IReadOnlyList<EtcdKvOperation> operations)
    {
        foreach (EtcdKvOperation op in operations)
        {
            if (op.Kind == EtcdKvOperationKind.Put && op.Lease != 0 && !state.Leases.ContainsKey(op.Lease))
            {
                return EtcdKvError.LeaseNotFound;
            }
        }

        foreach (EtcdKvOperation op in operations)
        {
            if (op.Kind != EtcdKvOperationKind.Range || op.Revision == 0)
            {
                continue;
            }

            if (!KeepsHistory)
            {
                throw new ArgumentException($"'{op}' reads at a past revision, and this model keeps no history: use EtcdKvModel.WithHistory or keepHistory: true.", nameof(operations));
            }

            if (op.Revision > state.Revision)
            {
                return EtcdKvError.FutureRevision;
            }

            if (op.Revision < state.CompactRevision)
            {
                return EtcdKvError.Compacted;
            }
        }

        return null;
    }

    private EtcdKvResponse SingleCall(EtcdKvState state, EtcdKvOperation op)
    {
        switch (op.Kind)
        {
            case EtcdKvOperationKind.LeaseGrant:
                if (op.Lease < 1)
                {
                    throw new ArgumentException($"'{op}': the model needs the lease id the client chose (at least 1).", nameof(op));
                }

                return state.Leases.ContainsKey(op.Lease)
                    ? EtcdKvResponse.Failure(EtcdKvError.LeaseExists)
                    : new EtcdKvResponse(state.Revision, true, [EtcdKvOperationResult.LeaseAnswer(op.Lease, GrantedTtl(op))]);
            case EtcdKvOperationKind.LeaseRevoke:
                if (!state.Leases.ContainsKey(op.Lease))
                {
                    return op.Expiry ? new EtcdKvResponse(state.Revision, true, []) : EtcdKvResponse.Failure(EtcdKvError.LeaseNotFound);
                }

                return new EtcdKvResponse(SingleCallNext(state, op).Revision, true, []);
            case EtcdKvOperationKind.LeaseKeepAlive:
                return state.Leases.TryGetValue(op.Lease, out long ttl)
                    ? new EtcdKvResponse(state.Revision, true, [EtcdKvOperationResult.LeaseAnswer(op.Lease, ttl)])
                    : EtcdKvResponse.Failure(EtcdKvError.LeaseNotFound);
            case EtcdKvOperationKind.Compact:
                return op.Revision <= state.CompactRevision ? EtcdKvResponse.Failure(EtcdKvError.Compacted)
                    : op.Revision > state.Revision ? EtcdKvResponse.Failure(EtcdKvError.FutureRevision)
                    : new EtcdKvResponse(state.Revision, true, []);
            default:
                EtcdKvState expected = op.ExpectedState ?? throw new ArgumentException("An expected-state operation without its state.", nameof(op));
                return new EtcdKvResponse(state.Revision, state.SameStore(expected), []);
        }
    }

    private EtcdKvState SingleCallNext(EtcdKvState state, EtcdKvOperation op)
    {
        switch (op.Kind)
        {
            case EtcdKvOperationKind.LeaseGrant when op.Lease >= 1 && !state.Leases.ContainsKey(op.Lease):
                return new EtcdKvState(state.Revision, state.CompactRevision, state.Keys, state.Leases.Add(op.Lease, GrantedTtl(op)), state.Past);
            case EtcdKvOperationKind.LeaseRevoke when state.Leases.ContainsKey(op.Lease):
                // etcd's lessor.Revoke: every attached key deleted in one transaction, then the lease forgotten.
                List<string> doomed = state.Keys.Values.Where(kv => kv.Lease == op.Lease).Select(kv => kv.Key).ToList();
                var leases = state.Leases.Remove(op.Lease);
                return doomed.Count == 0
                    ? new EtcdKvState(state.Revision, state.CompactRevision, state.Keys, leases, state.Past)
                    : Advance(state, state.Revision + 1, state.Keys.RemoveRange(doomed), leases);
            case EtcdKvOperationKind.Compact when op.Revision > state.CompactRevision && op.Revision <= state.Revision:
                return new EtcdKvState(state.Revision, op.Revision, state.Keys, state.Leases, state.Past?.TruncatedAt(op.Revision));
            default:
                return state;
        }
    }

    private long GrantedTtl(EtcdKvOperation op) => Math.Max(op.TtlSeconds, MinLeaseTtlSeconds);

    /// <summary>The state at a new revision; the old keys join the history when the model keeps it.</summary>
    private EtcdKvState Advance(EtcdKvState state, long revision, ImmutableSortedDictionary<string, EtcdKeyValue> keys, ImmutableSortedDictionary<long, long> leases)
    {
        EtcdKvPast? past = KeepsHistory ? new EtcdKvPast(state.Revision, state.Keys, state.Past) : null;
        return new EtcdKvState(revision, state.CompactRevision, keys, leases, past);
    }

    /// <summary>etcd's range: every key in range counted; at most Limit returned, More when some were left out; keys-only drops values, count-only drops keys.</summary>
    private static EtcdKvOperationResult Read(ImmutableSortedDictionary<string, EtcdKeyValue> keys, EtcdKvOperation op)
    {
        List<EtcdKeyValue> found = InRange(keys, op).ToList();
        if (op.CountOnly)
        {
            return new EtcdKvOperationResult([], 0) { Count = found.Count };
        }

        bool more = op.Limit > 0 && found.Count > op.Limit;
        IEnumerable<EtcdKeyValue> shown = more ? found.Take((int)op.Limit) : found;
        if (op.KeysOnly)
        {
            shown = shown.Select(kv => kv with { Value = "" });
        }

        return new EtcdKvOperationResult(shown.ToList(), 0) { Count = found.Count, More = more };
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
            EtcdCompareTarget.Lease => kv.Lease.CompareTo(compare.Number),
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
