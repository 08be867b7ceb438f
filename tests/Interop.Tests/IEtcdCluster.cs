namespace EmbeddedRaft.Interop.Tests;

/// <summary>
/// A running 3-member cluster that speaks the etcd v3 gRPC API on loopback: a real etcd 3.4
/// (<see cref="RealEtcdCluster"/>, when recording) or ours (<see cref="OurEtcdCluster"/>).
/// </summary>
internal interface IEtcdCluster : IAsyncDisposable
{
    IReadOnlyList<ClusterMember> Members { get; }

    ulong ClusterId { get; }
}

/// <summary>A member as etcdctl sees it: name, id and its client and peer URLs (http://127.0.0.1:PORT).</summary>
internal sealed record ClusterMember(string Name, ulong Id, string ClientUrl, string PeerUrl);
