using System.Security.Cryptography.X509Certificates;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport.Tcp;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Transport.Tcp;

/// <summary>
/// TLS with mutual authentication over real sockets, certificates made in the test: the cluster
/// commits over TLS and rotates certificates without a restart; a peer with no certificate, with a
/// certificate from another CA, or of another cluster is refused while the cluster keeps committing.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public class TcpTlsTests
{
    private static readonly X509Certificate2 ClusterCa = TestCertificates.CreateAuthority("EmbeddedRaft test cluster CA");
    private static readonly X509Certificate2 OtherCa = TestCertificates.CreateAuthority("Some other CA");

    [Test]
    public async Task AClusterOverMutualTlsCommitsRefusesOutsidersAndRotatesCertificatesWithoutARestart()
    {
        var certificates = new Dictionary<ulong, X509Certificate2>();
        for (ulong id = 1; id <= 3; id++)
        {
            certificates[id] = TestCertificates.IssueNode(ClusterCa, $"node{id}");
        }

        var loggers = Enumerable.Range(1, 3).ToDictionary(i => (ulong)i, _ => new SignalingLogger());
        int serverCertificateCalls = 0;
        await using var cluster = await TcpCluster.StartAsync(3, seed: 1410, proxied: true, configureTransport: (id, o) => o with
        {
            Logger = loggers[id],
            Tls = new TcpTransportTlsOptions
            {
                ServerCertificate = () =>
                {
                    Interlocked.Increment(ref serverCertificateCalls);
                    lock (certificates)
                    {
                        return certificates[id];
                    }
                },
                ClientCertificate = _ =>
                {
                    lock (certificates)
                    {
                        return certificates[id];
                    }
                },
                TrustedCertificateAuthorities = [ClusterCa],
            },
        });

        await cluster.ProposeAsync("over-tls");
        ulong target = cluster.LeaderId();
        ulong claimed = cluster.Nodes.Keys.First(id => id != target);
        ulong termBefore = cluster[target].Status.Raft.HardState.Term;

        // No certificate at all: the TLS handshake fails on the node.
        await AttackAsync(cluster, loggers[target], target, claimed, "TlsRefused", new TcpTransportTlsOptions
        {
            ServerCertificate = () => certificates[claimed],
            ClientCertificate = _ => null,
            TrustedCertificateAuthorities = [ClusterCa],
        });
        await cluster.ProposeAsync("after-no-certificate");

        // A certificate from another CA, claiming a member's id.
        var impostor = TestCertificates.IssueNode(OtherCa, $"node{claimed}");
        await AttackAsync(cluster, loggers[target], target, claimed, "TlsRefused", new TcpTransportTlsOptions
        {
            ServerCertificate = () => impostor,
            ClientCertificate = _ => impostor,
            TrustedCertificateAuthorities = [ClusterCa],
        });
        await cluster.ProposeAsync("after-other-ca");

        // A valid certificate of the CA, but another cluster's id: refused by the handshake.
        var valid = TestCertificates.IssueNode(ClusterCa, "node-of-another-cluster");
        await AttackAsync(cluster, loggers[target], target, claimed, "HandshakeRefused", new TcpTransportTlsOptions
        {
            ServerCertificate = () => valid,
            ClientCertificate = _ => valid,
            TrustedCertificateAuthorities = [ClusterCa],
        }, clusterId: TcpCluster.ClusterId + 1);
        await cluster.ProposeAsync("after-wrong-cluster");

        Assert.That(cluster.Nodes.Values.Max(n => n.Status.Raft.HardState.Term), Is.LessThan(1000), "no outsider's message reached a node (its term 1000 would have)");
        Assert.That(cluster.Transports[target].Metrics.TlsFailures, Is.GreaterThanOrEqualTo(2));
        Assert.That(cluster.Transports[target].Metrics.HandshakeFailures, Is.GreaterThanOrEqualTo(1));
        TestContext.Out.WriteLine($"term before {termBefore}, after {cluster[target].Status.Raft.HardState.Term}");

        // Rotation: new certificates from the same CA; the next connections present them.
        lock (certificates)
        {
            for (ulong id = 1; id <= 3; id++)
            {
                certificates[id] = TestCertificates.IssueNode(ClusterCa, $"node{id}-rotated");
            }
        }

        int callsBefore = Volatile.Read(ref serverCertificateCalls);
        foreach (var proxy in cluster.Proxies.Values)
        {
            proxy.CutAll();
        }

        await cluster.ProposeAsync("after-rotation");
        foreach (var (id, node) in cluster.Nodes)
        {
            await node.ReadIndexAsync().AsTask().WaitAsync(Waits.Limit);
            Assert.That(cluster.Machines[id].Commands, Is.SupersetOf(new[] { "over-tls", "after-no-certificate", "after-other-ca", "after-wrong-cluster", "after-rotation" }), $"node {id}");
        }

        Assert.That(Volatile.Read(ref serverCertificateCalls), Is.GreaterThan(callsBefore), "new connections asked for the (rotated) certificate");
    }

    /// <summary>
    /// An outsider claiming to be <paramref name="claimed"/> connects to <paramref name="target"/>
    /// and sends a heartbeat of term 1000 (which would unseat the leader if it got through); waits
    /// until the target logs the refusal <paramref name="refusal"/>.
    /// </summary>
    private static async Task AttackAsync(TcpCluster cluster, SignalingLogger targetLog, ulong target, ulong claimed, string refusal, TcpTransportTlsOptions tls, ulong clusterId = TcpCluster.ClusterId)
    {
        var refused = targetLog.NextAsync(refusal);
        await using var outsider = new TcpTransport(new TcpTransportOptions
        {
            NodeId = claimed,
            ClusterId = clusterId,
            Tls = tls,
            ReconnectMinDelay = TimeSpan.FromMilliseconds(20),
            ReconnectMaxDelay = TimeSpan.FromMilliseconds(200),
            ShutdownFlushTimeout = TimeSpan.Zero,
        });
        outsider.SetPeerAddress(target, cluster.Transports[target].LocalEndPoint.ToString());
        outsider.Send(new Message { Type = MessageType.Heartbeat, From = claimed, To = target, Term = 1000 });
        var entry = await refused;
        TestContext.Out.WriteLine($"node {target}: {entry.Message}");
    }
}
