using System.Security.Cryptography.X509Certificates;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Consensus.Transport.Tcp;
using EmbeddedRaft.Mvcc.Replication;
using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Samples;

/// <summary>
/// Members connected by <see cref="TcpTransport"/> over loopback with mutual TLS. Each member
/// listens on a port the operating system picks (port 0) when it is described, and publishes it as
/// its peer URL <c>tls://127.0.0.1:PORT</c>; the stores keep every transport's peer addresses equal
/// to the members' first peer URLs. A restarted member listens on its old port again, since the
/// other members know it by that address.
/// </summary>
/// <remarks>Each transport logs through <paramref name="loggerFactory"/> (lost connections and reconnects are warnings).</remarks>
internal sealed class TlsTcpFabric(ThrowawayCertificateAuthority authority, ILoggerFactory loggerFactory) : IClusterFabric
{
    // Every member's TCP handshake carries the cluster id; a peer of another cluster is refused.
    private const ulong SampleClusterId = 0x5341_4D50_4C45_0001;

    private readonly Dictionary<ulong, X509Certificate2> _certificates = [];
    private readonly Dictionary<ulong, int> _ports = [];
    private readonly Dictionary<ulong, TcpTransport> _open = [];

    public string Description => "TcpTransport with mutual TLS on 127.0.0.1 (ports picked by the system), each member with a WAL, snapshots and a B+tree on disk";

    public ulong ClusterId => SampleClusterId;

    public MemberInfo Describe(ulong id, string name, bool isLearner)
    {
        _certificates[id] = authority.IssueMemberCertificate(name);
        var transport = Open(id, "127.0.0.1:0"); // listening from now on: the port is ours
        _ports[id] = transport.LocalEndPoint.Port;
        return new MemberInfo(id, name, PeerUrls: [$"tls://127.0.0.1:{_ports[id]}"], ClientUrls: [], IsLearner: isLearner);
    }

    public IRaftTransport OpenTransport(ulong id, IReadOnlyList<MemberInfo> knownMembers)
    {
        var transport = _open.TryGetValue(id, out var listening) ? listening : Open(id, $"127.0.0.1:{_ports[id]}");

        // The store sets its peers' addresses from the member list it knows, but a member that
        // joins starts empty: like etcd's --initial-cluster for a new member, tell it where the
        // others are so it accepts the leader's connection and can answer it.
        foreach (var member in knownMembers.Where(m => m.Id != id))
        {
            transport.SetPeerAddress(member.Id, new Uri(member.PeerUrls[0]).Authority);
        }

        return transport;
    }

    public async ValueTask CloseTransportAsync(ulong id)
    {
        if (_open.Remove(id, out var transport))
        {
            await transport.DisposeAsync().ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (ulong id in _open.Keys.ToList())
        {
            await CloseTransportAsync(id).ConfigureAwait(false);
        }

        foreach (var certificate in _certificates.Values)
        {
            certificate.Dispose();
        }
    }

    private TcpTransport Open(ulong id, string listenAddress)
    {
        var certificate = _certificates[id];
        var transport = new TcpTransport(new TcpTransportOptions
        {
            NodeId = id,
            ClusterId = SampleClusterId,
            ListenAddress = listenAddress,
            Logger = loggerFactory.CreateLogger<TcpTransport>(),
            Tls = new TcpTransportTlsOptions
            {
                ServerCertificate = () => certificate,
                ClientCertificate = _ => certificate,
                TrustedCertificateAuthorities = [authority.Root],
            },
        });
        _open[id] = transport;
        return transport;
    }
}
