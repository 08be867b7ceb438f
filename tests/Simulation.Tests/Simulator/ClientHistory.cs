using EmbeddedRaft.TestSupport.Linearizability;
using EmbeddedRaft.TestSupport.Simulation;

namespace EmbeddedRaft.Simulation.Tests.Simulator;

/// <summary>A serializable read: whatever member served it answered with its state at <see cref="Revision"/>.</summary>
internal sealed record SerializableRead(int ClientId, ulong MemberId, long InvokeTicks, long CompleteTicks, EtcdKvRequest Request, EtcdKvResponse Response);

/// <summary>One keep-alive a lease client saw succeed (or answer "not found") with the TTL it was granted.</summary>
internal sealed record KeepAliveOutcome(long LeaseId, long InvokeTicks, long CompleteTicks, long TtlSeconds, bool Found);

/// <summary>A lease whose key was put (its key is deleted when the lease goes: a revision the KV history must hold).</summary>
internal sealed record LeaseKey(long LeaseId, string Key, long GrantInvokeTicks);

/// <summary>One event as a whole-keyspace watcher received it.</summary>
internal sealed record ObservedEvent(long Revision, bool IsDelete, string Key, string Value, long CreateRevision, long ModRevision, long Version, long Lease);

/// <summary>
/// Everything the simulated clients observed: the KV operations for the linearizability check
/// (invocation and completion in simulated ticks; null completion = indeterminate), serializable
/// reads, lease keep-alives and leased keys, and the whole-keyspace watchers' events.
/// </summary>
internal sealed class ClientHistory
{
    private readonly List<Operation<EtcdKvRequest, EtcdKvResponse>> _operations = [];

    public IReadOnlyList<Operation<EtcdKvRequest, EtcdKvResponse>> Operations => _operations;

    public List<SerializableRead> SerializableReads { get; } = [];

    public List<KeepAliveOutcome> KeepAlives { get; } = [];

    public List<LeaseKey> LeaseKeys { get; } = [];

    /// <summary>When each explicitly revoked lease's revoke was first invoked (an expiry check must not count those).</summary>
    public Dictionary<long, long> RevokesInvoked { get; } = [];

    /// <summary>Per watcher: the events it received, in order, each with the simulated time it arrived.</summary>
    public List<List<(ObservedEvent Event, long ReceivedTicks)>> WatchStreams { get; } = [];

    /// <summary>Every watch stream, as SIM-C's watch checker and reference history take them (whole keyspace, prev_kv).</summary>
    public List<WatchObservation> WatchObservations { get; } = [];

    /// <summary>Each member's HashKV after healing (for the convergence checker).</summary>
    public List<MemberHash> MemberHashes { get; } = [];

    /// <summary>Writes the API answered with a failure that means "not done" (no leader, a refusal): left out of the history.</summary>
    public int DefiniteFailures { get; set; }

    public void Add(Operation<EtcdKvRequest, EtcdKvResponse> operation) => _operations.Add(operation);

    public int Completed => _operations.Count(o => !o.Indeterminate);

    public int Indeterminate => _operations.Count(o => o.Indeterminate);
}
