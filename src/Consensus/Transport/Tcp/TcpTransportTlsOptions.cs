using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;

namespace EmbeddedRaft.Consensus.Transport.Tcp;

/// <summary>
/// TLS for a <see cref="TcpTransport"/>: every connection is wrapped in an <see cref="SslStream"/>
/// with mutual authentication (the accepting side requires a client certificate). Certificates are
/// chosen per connection by callbacks, so they rotate without a restart.
/// </summary>
/// <remarks>
/// <para>
/// A remote certificate is accepted when <see cref="RemoteCertificateValidation"/> says so, or, when
/// that is null, when it chains to one of <see cref="TrustedCertificateAuthorities"/> (no revocation
/// check; the host name is not checked: peers are identified by the cluster handshake that follows,
/// and the certificate proves membership of the cluster's CA). A connection without a certificate
/// or with one that fails the check is refused, counted as a TLS failure and logged.
/// </para>
/// <para>An immutable record; the callbacks are called concurrently from connection tasks and must be thread-safe.</para>
/// </remarks>
public sealed record TcpTransportTlsOptions
{
    /// <summary>Creates TLS options with nothing set (set the certificate callbacks and a trust rule).</summary>
    public TcpTransportTlsOptions()
    {
    }

    /// <summary>
    /// Returns the certificate (with its private key) this node presents when it accepts a
    /// connection; called once per inbound connection. Required.
    /// </summary>
    public Func<X509Certificate2>? ServerCertificate { get; init; }

    /// <summary>
    /// Returns the certificate (with its private key) this node presents when it connects to a
    /// peer, given that peer's id; called once per outbound connection. Null (the option, or what it
    /// returns) sends no certificate, which a peer refuses. Required for a working cluster.
    /// </summary>
    public Func<ulong, X509Certificate2?>? ClientCertificate { get; init; }

    /// <summary>The CAs a peer's certificate must chain to (used when <see cref="RemoteCertificateValidation"/> is null).</summary>
    public X509Certificate2Collection? TrustedCertificateAuthorities { get; init; }

    /// <summary>
    /// Decides whether a remote certificate is accepted (both directions), replacing the
    /// <see cref="TrustedCertificateAuthorities"/> rule; receives what <see cref="SslStream"/> found.
    /// </summary>
    public RemoteCertificateValidationCallback? RemoteCertificateValidation { get; init; }

    /// <summary>The TLS versions allowed; default <see cref="SslProtocols.None"/> (the operating system's choice).</summary>
    public SslProtocols EnabledProtocols { get; init; } = SslProtocols.None;

    /// <summary>Checks that the options can work; called by the transport's constructor.</summary>
    /// <exception cref="ArgumentException">No server certificate, or no rule to validate remote certificates.</exception>
    internal void Validate()
    {
        if (ServerCertificate is null)
        {
            throw new ArgumentException($"TLS needs {nameof(ServerCertificate)}: the certificate a node presents to peers that connect to it.", nameof(ServerCertificate));
        }

        if (RemoteCertificateValidation is null && (TrustedCertificateAuthorities is null || TrustedCertificateAuthorities.Count == 0))
        {
            throw new ArgumentException($"TLS needs {nameof(TrustedCertificateAuthorities)} or {nameof(RemoteCertificateValidation)} to decide which peers to trust.", nameof(TrustedCertificateAuthorities));
        }
    }

    /// <summary>The validation rule: the caller's callback, or a chain to a trusted CA (name mismatches ignored, see remarks).</summary>
    internal bool IsRemoteCertificateValid(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (RemoteCertificateValidation is { } callback)
        {
            return callback(sender, certificate, chain, errors);
        }

        if (certificate is null || (errors & SslPolicyErrors.RemoteCertificateNotAvailable) != 0)
        {
            return false;
        }

        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        custom.ChainPolicy.CustomTrustStore.AddRange(TrustedCertificateAuthorities!);
        if (chain is not null)
        {
            // Intermediates the peer sent along.
            foreach (var element in chain.ChainElements)
            {
                custom.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }

        if (certificate is X509Certificate2 remote)
        {
            return custom.Build(remote);
        }

        using var copy = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        return custom.Build(copy);
    }
}
