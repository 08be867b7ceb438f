using EmbeddedRaft.Samples.EtcdCompatibleServer;
using Microsoft.Extensions.Logging.Abstractions;

namespace EmbeddedRaft.Interop.Tests;

/// <summary>
/// Our 3-member cluster (samples/EtcdCompatibleServer's <see cref="EtcdCluster"/>) on free
/// loopback ports, on a temporary data directory deleted when disposed.
/// </summary>
internal sealed class OurEtcdCluster : IEtcdCluster
{
    private OurEtcdCluster(EtcdCluster cluster)
    {
        Cluster = cluster;
        Members = [.. cluster.Members.Select(m => new ClusterMember(m.Info.Name, m.Info.Id, m.ClientUrl, PeerUrls.ToEtcd(m.Info.PeerUrls[0])))];
    }

    public EtcdCluster Cluster { get; }

    public IReadOnlyList<ClusterMember> Members { get; }

    public ulong ClusterId => Cluster.ClusterId;

    public static async Task<IEtcdCluster> StartAsync() => await StartOursAsync().ConfigureAwait(false);

    public static async Task<OurEtcdCluster> StartOursAsync(EtcdServerOptions? options = null)
    {
        options ??= new EtcdServerOptions();
        EtcdCluster cluster = await EtcdCluster.StartAsync(options with { FirstClientPort = 0, FirstPeerPort = 0 }, NullLoggerFactory.Instance).ConfigureAwait(false);
        return new OurEtcdCluster(cluster);
    }

    public ValueTask DisposeAsync() => Cluster.DisposeAsync();
}
