using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using EmbeddedRaft.Consensus.Transport.Tcp;

namespace EmbeddedRaft.Benchmarks.Transport;

/// <summary>A CA and one node certificate it signs (P-256, server and client use), made at run time for the TLS benchmarks.</summary>
internal static class BenchmarkCertificates
{
    private static readonly Lazy<(X509Certificate2 Ca, X509Certificate2 Node)> Made = new(Make);

    /// <summary>Mutual TLS where every node presents the same certificate and trusts the CA.</summary>
    public static TcpTransportTlsOptions TlsOptions() => new()
    {
        ServerCertificate = () => Made.Value.Node,
        ClientCertificate = _ => Made.Value.Node,
        TrustedCertificateAuthorities = [Made.Value.Ca],
    };

    private static (X509Certificate2, X509Certificate2) Make()
    {
        var now = DateTimeOffset.UtcNow;
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=EmbeddedRaft benchmark CA", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign, true));
        using var caCreated = caRequest.CreateSelfSigned(now.AddDays(-1), now.AddDays(30));
        var ca = X509CertificateLoader.LoadPkcs12(caCreated.Export(X509ContentType.Pfx), null);

        using var nodeKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var nodeRequest = new CertificateRequest("CN=node", nodeKey, HashAlgorithmName.SHA256);
        nodeRequest.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(System.Net.IPAddress.Loopback);
        nodeRequest.CertificateExtensions.Add(names.Build());
        using var issued = nodeRequest.Create(ca, now.AddHours(-1), now.AddDays(7), [1, 2, 3, 4]);
        using var withKey = issued.CopyWithPrivateKey(nodeKey);
        return (ca, X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pfx), null));
    }
}
