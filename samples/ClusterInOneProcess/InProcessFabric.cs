using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Mvcc.Replication;

namespace EmbeddedRaft.Samples;

/// <summary>
/// Members in one process, connected by <see cref="InProcessNetwork"/>: messages are handed from
/// one member to another in memory (the network can also drop, delay, duplicate and partition, for
/// tests). The peer URLs are names only (a member's URL must have the form tcp://host:port, but
/// the in-process network never resolves it): nothing listens on a port.
/// </summary>
internal sealed class InProcessFabric : IClusterFabric
{
    private readonly InProcessNetwork _network = new();

    public string Description => "InProcessNetwork (in memory), each member with a WAL, snapshots and a B+tree on disk";

    public ulong ClusterId => 0; // derived by the stores from the initial members' ids

    public MemberInfo Describe(ulong id, string name, bool isLearner) =>
        new(id, name, PeerUrls: [$"tcp://{name}:2380"], ClientUrls: [], IsLearner: isLearner);

    // A restarted member takes a new transport for the same id: the network binds it again.
    public IRaftTransport OpenTransport(ulong id, IReadOnlyList<MemberInfo> knownMembers) => _network.CreateTransport(id);

    public ValueTask CloseTransportAsync(ulong id) => ValueTask.CompletedTask;

    public ValueTask DisposeAsync()
    {
        _network.Dispose();
        return ValueTask.CompletedTask;
    }
}
