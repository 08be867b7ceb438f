using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Mvcc.Replication;

namespace EmbeddedRaft.Samples;

/// <summary>
/// How the story's members reach one another: <c>InProcessNetwork</c> (ClusterInOneProcess) or
/// TCP with mutual TLS on loopback (TcpCluster). Everything else in the story is the same.
/// </summary>
internal interface IClusterFabric : IAsyncDisposable
{
    /// <summary>One line for the story's first step, saying what connects the members.</summary>
    string Description { get; }

    /// <summary>The cluster id the stores start with (0: derived from the initial members' ids).</summary>
    ulong ClusterId { get; }

    /// <summary>
    /// Reserves member <paramref name="id"/>'s address (a TCP fabric binds its listener here) and
    /// returns the member as the cluster will know it. Called once per member, before its first start.
    /// </summary>
    MemberInfo Describe(ulong id, string name, bool isLearner);

    /// <summary>
    /// The transport for one run of member <paramref name="id"/>'s store (called again when the member
    /// restarts). <paramref name="knownMembers"/> are the members this process knows of: a joining
    /// member's first contacts.
    /// </summary>
    IRaftTransport OpenTransport(ulong id, IReadOnlyList<MemberInfo> knownMembers);

    /// <summary>Closes member <paramref name="id"/>'s transport once its store is disposed (a TCP listener frees its port).</summary>
    ValueTask CloseTransportAsync(ulong id);
}
