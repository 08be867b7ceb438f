using System.Collections.Immutable;
using EmbeddedRaft.TestSupport.Linearizability;
using EmbeddedRaft.TestSupport.Simulation;

namespace EmbeddedRaft.Simulation.Tests.Checkers;

/// <summary>
/// A seeded, correct run of an etcd-like store as the simulator would record it: clients' operations
/// (puts, deletes, reads now and in the past, limits, leases, expiries, compactions, some indeterminate)
/// executed in one true order with overlapping time intervals around their linearization points; the
/// committed events each revision made; whole-keyspace reference watchers; client watchers (key or range,
/// filters, prev_kv, resumed, ended by compaction); every member's hash. Everything a correct store
/// would produce, so every checker must pass it; the mutations break one rule each.
/// </summary>
internal sealed class GeneratedRun
{
    private static readonly string[] s_keys = ["a", "b", "c", "d", "e"];

    private GeneratedRun(int seed) => Seed = seed;

    public int Seed { get; }

    public List<Operation<EtcdKvRequest, EtcdKvResponse>> History { get; } = [];

    public List<CommittedEvent> Committed { get; } = [];

    public List<WatchObservation> ReferenceWatchers { get; } = [];

    public List<WatchObservation> Watchers { get; } = [];

    public List<MemberHash> Hashes { get; } = [];

    /// <summary>Quiescent points: gaps in time no operation spans, with the state there (every <see cref="OperationsPerWindow"/> operations).</summary>
    public List<QuiescentPoint> Points { get; } = [];

    /// <summary>How many operations run between two quiescent points.</summary>
    public const int OperationsPerWindow = 30;

    /// <summary>Acknowledged client revocations: lease and revision.</summary>
    public List<(long Lease, long Revision)> Revocations { get; } = [];

    public EtcdKvState Final { get; private set; } = EtcdKvState.Create(1);

    public static GeneratedRun Create(int seed, int operations)
    {
        var random = new Random(seed);
        var run = new GeneratedRun(seed);
        run.Execute(random, operations);
        run.Watch(random);
        // FNV-1a of the final state's text: deterministic across processes, unlike GetHashCode.
        uint hash = 2166136261;
        foreach (char c in run.Final.ToString())
        {
            hash = (hash ^ c) * 16777619;
        }

        for (ulong member = 1; member <= 3; member++)
        {
            run.Hashes.Add(new MemberHash(member, run.Final.Revision, run.Final.CompactRevision, run.Final.Revision, hash));
        }

        return run;
    }

    private void Execute(Random random, int operations)
    {
        EtcdKvModel model = EtcdKvModel.WithHistory;
        EtcdKvState state = model.Initial;
        long nextLease = 100;
        var liveLeases = new List<long>();
        var expiryPending = new Dictionary<long, long>(); // lease -> the grant's invocation time
        int value = 0;

        // One lease is granted, used and revoked by a client in every run, so each has a revocation.
        var script = new Queue<EtcdKvRequest>([EtcdKvRequest.LeaseGrant(1, 60), EtcdKvRequest.PutWithLease("a", "leased", 1)]);
        int revokeAt = random.Next(operations / 4, operations / 2);
        for (int i = 0; i < operations; i++)
        {
            // Operations overlap their neighbours (intervals of up to 150 around points 100 apart);
            // every OperationsPerWindow operations, time jumps by 1,000, leaving a quiescent gap.
            long point = (100 * (i + 1)) + (1000 * (i / OperationsPerWindow));
            if (i > 0 && i % OperationsPerWindow == 0)
            {
                Points.Add(new QuiescentPoint(point - 600, state));
            }

            EtcdKvRequest request = i == revokeAt ? EtcdKvRequest.LeaseRevoke(1)
                : script.Count > 0 ? script.Dequeue()
                : Next(random, state, liveLeases, ref nextLease, ref value);
            bool isExpiry = request.IsSingleCall && request.Success[0].Expiry;
            (EtcdKvResponse response, EtcdKvState next) = model.Apply(state, request);
            long invoke = point - random.Next(0, 150);
            long complete = point + random.Next(0, 150);
            if (isExpiry)
            {
                // Expiry is the leader's: recorded as the indeterminate revocation invoked with the grant.
                long lease = request.Success[0].Lease;
                History.Add(Operation.IndeterminateAfter<EtcdKvRequest, EtcdKvResponse>(-2, expiryPending[lease], request));
                expiryPending.Remove(lease);
            }
            else if (random.Next(30) == 0 && !request.IsSingleCall)
            {
                History.Add(Operation.IndeterminateAfter<EtcdKvRequest, EtcdKvResponse>(i % 5, invoke, request));
            }
            else
            {
                History.Add(Operation.Completed(i % 5, invoke, complete, request, response));
            }

            if (request.IsSingleCall && response.Error == EtcdKvError.None)
            {
                EtcdKvOperation call = request.Success[0];
                if (call.Kind == EtcdKvOperationKind.LeaseGrant)
                {
                    liveLeases.Add(call.Lease);
                    if (call.Lease != 1)
                    {
                        expiryPending[call.Lease] = invoke;
                    }
                }
                else if (call.Kind == EtcdKvOperationKind.LeaseRevoke)
                {
                    liveLeases.Remove(call.Lease);
                    if (!call.Expiry)
                    {
                        Revocations.Add((call.Lease, response.Revision));
                    }
                }
            }

            RecordEvents(state, next);
            state = next;
        }

        // Leases never expired still have their (never happening) expiry recorded, as the harness would.
        foreach ((long lease, long invoked) in expiryPending)
        {
            History.Add(Operation.IndeterminateAfter<EtcdKvRequest, EtcdKvResponse>(-2, invoked, EtcdKvRequest.LeaseExpiry(lease)));
        }

        History.Sort((x, y) => x.InvokeTicks.CompareTo(y.InvokeTicks));
        Final = state;
    }

    private static EtcdKvRequest Next(Random random, EtcdKvState state, List<long> liveLeases, ref long nextLease, ref int value)
    {
        string key = s_keys[random.Next(s_keys.Length)];
        int roll = random.Next(100);
        switch (roll)
        {
            case < 25:
                return EtcdKvRequest.Of(EtcdKvOperation.Put(key, $"v{++value}") with { PrevKv = random.Next(3) == 0 });
            case < 32 when liveLeases.Count > 0:
                return EtcdKvRequest.PutWithLease(key, $"v{++value}", liveLeases[random.Next(liveLeases.Count)]);
            case < 40:
                return random.Next(3) == 0
                    ? EtcdKvRequest.Of(EtcdKvOperation.DeleteRange(key, "d") with { PrevKv = true })
                    : EtcdKvRequest.Delete(key);
            case < 55:
                return EtcdKvRequest.Get(key);
            case < 62:
                return EtcdKvRequest.Of(EtcdKvOperation.Range("a", "\0") with { Limit = random.Next(0, 4), KeysOnly = random.Next(4) == 0 });
            case < 65:
                return EtcdKvRequest.Of(EtcdKvOperation.Range("b", "e") with { CountOnly = true });
            case < 72 when state.Revision > 1:
                // Mostly readable, sometimes compacted, sometimes in the future: every answer is checked.
                return EtcdKvRequest.GetAt(key, random.Next(1, (int)state.Revision + 2));
            case < 75:
                return EtcdKvRequest.CompareValueAndPut(key, state.Keys.TryGetValue(key, out EtcdKeyValue? kv) && random.Next(2) == 0 ? kv.Value : "none", $"v{++value}");
            case < 77 when liveLeases.Count < 4:
                // Few live leases at a time: each pending expiry is an indeterminate operation the search may place anywhere.
                return EtcdKvRequest.LeaseGrant(nextLease++, random.Next(1, 30));
            case < 84 when liveLeases.Count > 0:
                return EtcdKvRequest.LeaseKeepAlive(liveLeases[random.Next(liveLeases.Count)]);
            case < 88 when liveLeases.Count > 1:
                long expiring = liveLeases[random.Next(liveLeases.Count)];
                return expiring == 1 ? EtcdKvRequest.LeaseKeepAlive(1) : EtcdKvRequest.LeaseExpiry(expiring);
            case < 90 when state.Revision - state.CompactRevision > 3:
                return EtcdKvRequest.Compact(random.NextInt64(state.CompactRevision + 1, state.Revision));
            default:
                return EtcdKvRequest.Get(key);
        }
    }

    /// <summary>The events a revision made, as a whole-keyspace watcher with prev_kv receives them (keys in order).</summary>
    private void RecordEvents(EtcdKvState before, EtcdKvState after)
    {
        if (after.Revision == before.Revision)
        {
            return;
        }

        foreach (string key in before.Keys.Keys.Union(after.Keys.Keys).Order(StringComparer.Ordinal))
        {
            before.Keys.TryGetValue(key, out EtcdKeyValue? old);
            after.Keys.TryGetValue(key, out EtcdKeyValue? now);
            if (now is not null && now.ModRevision == after.Revision)
            {
                Committed.Add(CommittedEvent.Put(now, old));
            }
            else if (now is null && old is not null)
            {
                Committed.Add(CommittedEvent.Delete(key, after.Revision, old));
            }
        }
    }

    private void Watch(Random random)
    {
        long final = Final.Revision;
        ReferenceWatchers.Add(WatchFixtures.Whole(Committed, "ref1", final, member: 1));
        ReferenceWatchers.Add(WatchFixtures.Whole(Committed, "ref2", random.NextInt64(1, final + 1), member: 2));
        long split = random.NextInt64(1, final + 1);
        ReferenceWatchers.Add(WatchFixtures.Whole(Committed, "ref3.1", split, member: 3) with { End = WatchEnd.MemberStopped });
        ReferenceWatchers.Add(WatchFixtures.Whole(Committed, "ref3.2", final, start: split + 1, member: 3) with { ResumedFrom = "ref3.1" });

        var compactions = History.Where(op => op.Output is { Error: EtcdKvError.None } && op.Input.IsSingleCall && op.Input.Success[0].Kind == EtcdKvOperationKind.Compact)
            .Select(op => op.Input.Success[0].Revision).ToList();
        for (int w = 0; w < 8; w++)
        {
            string key = s_keys[random.Next(s_keys.Length)];
            (string Key, string? End) range = random.Next(3) switch
            {
                0 => (key, null),
                1 => ("a", "\0"),
                _ => ("b", "d"),
            };
            long start = random.NextInt64(1, final + 1);
            bool prevKv = random.Next(2) == 0;
            bool noPut = random.Next(6) == 0;
            bool noDelete = !noPut && random.Next(6) == 0;
            WatchObservation Make(string id, long from, long through, WatchEnd end) =>
                WatchFixtures.Observe(Committed, id, range.Key, range.End, from, through, prevKv, noPut, noDelete, end, member: (ulong)(w % 3) + 1);

            if (random.Next(3) == 0 && compactions.Count > 0)
            {
                // Told "compacted": it started below a compaction and fell behind it.
                long compact = compactions[random.Next(compactions.Count)];
                long from = random.NextInt64(1, compact + 1);
                Watchers.Add(Make($"w{w}.1", from, random.NextInt64(from - 1, compact), WatchEnd.Compacted) with { CompactRevision = compact });
                Watchers.Add(Make($"w{w}.2", compact + 1, final, WatchEnd.Open) with { ResumedFrom = $"w{w}.1" });
            }
            else if (random.Next(2) == 0)
            {
                long cut = random.NextInt64(start - 1, final + 1);
                Watchers.Add(Make($"w{w}.1", start, cut, WatchEnd.MemberStopped));
                Watchers.Add(Make($"w{w}.2", cut + 1, final, WatchEnd.Open) with { ResumedFrom = $"w{w}.1" });
            }
            else
            {
                Watchers.Add(Make($"w{w}", start, random.NextInt64(start - 1, final + 1), WatchEnd.Cancelled));
            }
        }
    }

    public override string ToString() =>
        $"seed {Seed}: {History.Count} operations ({History.Count(op => op.Indeterminate)} indeterminate), revision {Final.Revision} (compacted at {Final.CompactRevision}), {Committed.Count} events, {Watchers.Count} watch streams";

    /// <summary>The final live keys (for tests that pick one).</summary>
    public ImmutableSortedDictionary<string, EtcdKeyValue> FinalKeys => Final.Keys;
}
