using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.TestSupport.Linearizability;
using static EmbeddedRaft.Mvcc.Tests.Replication.ReplicatedCluster;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>
/// Settles what the store's own revision history can settle of a client history's indeterminate
/// operations, after the run, before the linearizability check (etcd's robustness tests patch their
/// histories from watch events the same way). Without it, a few dozen writes of unknown outcome make
/// the search over a global revision counter exponential (the check then answers Unknown).
/// </summary>
/// <remarks>
/// Every change only narrows what the checker accepts, so it cannot hide a violation:
/// <list type="bullet">
/// <item>A put (plain, or a compare-and-swap's success branch) of a value first written at revision
/// <c>r</c> becomes an operation completed at the end of the run that answered <c>r</c>: it must be
/// placed where the model gives exactly that revision. Every value a client writes is unique, and a
/// move only copies a value already written, so a value's first revision is its put's.</item>
/// <item>A move (put the value to the next key, delete it from this one) whose one (from, to, value)
/// revision is found, and that no other operation of the history shares, is settled the same way.</item>
/// <item>A put, compare-and-swap or move whose effect is in no revision up to the last one read did
/// not take effect before every observation (all of them are at or below that revision): it is left
/// out, as linearizing it after everything would be. A read of unknown outcome constrains nothing and
/// is left out too.</item>
/// <item>Deletes of unknown outcome stay indeterminate (a delete writes no value to recognise it by).</item>
/// </list>
/// </remarks>
internal static class IndeterminateOutcomes
{
    /// <summary>
    /// The keys under <c>k</c> at every revision 0..<paramref name="through"/> as <paramref name="member"/>
    /// holds them (serializable reads of the past, so the history must not be compacted yet).
    /// </summary>
    public static async Task<IReadOnlyList<IReadOnlyDictionary<string, EtcdKeyValue>>> ReadRevisionsAsync(ReplicatedStore member, long through)
    {
        var states = new List<IReadOnlyDictionary<string, EtcdKeyValue>> { new Dictionary<string, EtcdKeyValue>() };
        for (long revision = 1; revision <= through; revision++)
        {
            var range = await member.RangeAsync(new RangeRequest { Key = Key("k"), RangeEnd = Key("l"), Revision = revision }, ReadConsistency.Serializable);
            states.Add(range.Kvs.ToDictionary(kv => Text(kv.Key), kv => new EtcdKeyValue(Text(kv.Key), Text(kv.Value), kv.CreateRevision, kv.ModRevision, kv.Version)));
        }

        return states;
    }

    /// <summary>
    /// <paramref name="history"/> with its indeterminate operations settled from <paramref name="states"/>
    /// (index: revision) where they can be; settled operations complete at <paramref name="endTicks"/>.
    /// </summary>
    public static (List<Operation<EtcdKvRequest, EtcdKvResponse>> History, int Settled, int NotApplied, int Reads, int Unknown) Settle(
        IReadOnlyList<Operation<EtcdKvRequest, EtcdKvResponse>> history,
        IReadOnlyList<IReadOnlyDictionary<string, EtcdKeyValue>> states,
        long endTicks)
    {
        var firstWritten = new Dictionary<string, (long Revision, string Key)>(StringComparer.Ordinal);
        var moves = new Dictionary<(string From, string To, string Value), List<long>>();
        for (int revision = 1; revision < states.Count; revision++)
        {
            var puts = states[revision].Values.Where(kv => kv.ModRevision == revision).ToList();
            var deleted = states[revision - 1].Keys.Where(key => !states[revision].ContainsKey(key)).ToList();
            foreach (var put in puts)
            {
                firstWritten.TryAdd(put.Value, (revision, put.Key));
            }

            if (puts is [var to] && deleted is [string from] && states[revision - 1][from].Value == to.Value)
            {
                var key = (from, to.Key, to.Value);
                if (!moves.TryGetValue(key, out var at))
                {
                    moves[key] = at = [];
                }

                at.Add(revision);
            }
        }

        var moveOperations = history.Select(op => MoveOf(op.Input)).OfType<(string, string, string)>().CountBy(m => m).ToDictionary();
        var settled = new List<Operation<EtcdKvRequest, EtcdKvResponse>>(history.Count);
        int settledCount = 0, notApplied = 0, reads = 0, unknown = 0;
        foreach (var op in history)
        {
            if (!op.Indeterminate)
            {
                settled.Add(op);
                continue;
            }

            var request = op.Input;
            if (request.Compares.Count == 0 && request.Success.All(o => o.Kind == EtcdKvOperationKind.Range))
            {
                reads++;
                continue;
            }

            long? revision = null;
            EtcdKvOperationResult[] results = [EtcdKvOperationResult.PutDone];
            bool absent = false;
            if (request.Success is [{ Kind: EtcdKvOperationKind.Put } put])
            {
                if (!firstWritten.TryGetValue(put.Value!, out var written))
                {
                    absent = true;
                }
                else if (written.Key == put.Key)
                {
                    revision = written.Revision;
                }
            }
            else if (MoveOf(request) is { } move)
            {
                if (!moves.TryGetValue(move, out var at))
                {
                    absent = true;
                }
                else if (at.Count == 1 && moveOperations[move] == 1)
                {
                    revision = at[0];
                    results = [EtcdKvOperationResult.PutDone, new EtcdKvOperationResult([], 1)];
                }
            }

            if (absent)
            {
                notApplied++;
            }
            else if (revision is long r)
            {
                settled.Add(Operation.Completed(op.ClientId, op.InvokeTicks, Math.Max(endTicks, op.InvokeTicks), request, new EtcdKvResponse(r, true, results)));
                settledCount++;
            }
            else
            {
                settled.Add(op);
                unknown++;
            }
        }

        return (settled, settledCount, notApplied, reads, unknown);
    }

    /// <summary>The (from, to, value) of a move request (put the compared value to another key, delete this one), or null.</summary>
    private static (string From, string To, string Value)? MoveOf(EtcdKvRequest request) =>
        request is { Compares: [{ Target: EtcdCompareTarget.Value } compare], Success: [{ Kind: EtcdKvOperationKind.Put } put, { Kind: EtcdKvOperationKind.DeleteRange } delete] }
            && delete.Key == compare.Key && put.Value == compare.Value
            ? (compare.Key, put.Key, put.Value!)
            : null;
}
