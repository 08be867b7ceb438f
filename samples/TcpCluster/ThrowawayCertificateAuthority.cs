using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace EmbeddedRaft.Samples;

/// <summary>
/// A certificate authority that lives for one run: a self-signed root made in memory, which signs
/// one certificate per member (usable as TLS server and client, valid for 127.0.0.1 and localhost).
/// Every member trusts the root and nothing else, so only holders of its certificates join. In
/// production the CA and the certificates come from your PKI; the transport only needs the callbacks.
/// </summary>
internal sealed class ThrowawayCertificateAuthority : IDisposable
{
    private static readonly Oid s_serverAuthentication = new("1.3.6.1.5.5.7.3.1");
    private static readonly Oid s_clientAuthentication = new("1.3.6.1.5.5.7.3.2");

    private readonly X509Certificate2 _root;

    private ThrowawayCertificateAuthority(X509Certificate2 root) => _root = root;

    /// <summary>The root certificate (its public part is what members trust).</summary>
    public X509Certificate2 Root => _root;

    /// <summary>Makes a new root with a fresh P-256 key, valid for two days (the members' certificates for one: never past the root's).</summary>
    public static ThrowawayCertificateAuthority Create(string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: true, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        var now = DateTimeOffset.UtcNow;
        return new ThrowawayCertificateAuthority(request.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(2)));
    }

    /// <summary>Issues a member's certificate, with its private key, signed by the root.</summary>
    public X509Certificate2 IssueMemberCertificate(string memberName)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={memberName}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: false, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([s_serverAuthentication, s_clientAuthentication], critical: false));
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(System.Net.IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());

        var now = DateTimeOffset.UtcNow;
        using var issued = request.Create(_root, now.AddMinutes(-5), now.AddDays(1), RandomNumberGenerator.GetBytes(16));
        using var withKey = issued.CopyWithPrivateKey(key);

        // A round trip through PKCS#12 gives the key a form every platform's TLS stack accepts
        // (Windows' SChannel refuses ephemeral keys).
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), password: null);
    }

    public void Dispose() => _root.Dispose();
}
