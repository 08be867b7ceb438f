using System.Security.Cryptography.X509Certificates;
using EmbeddedRaft.Mvcc.Replication;
using Etcd = EmbeddedRaft.Samples.EtcdCompatibleServer.Etcdserverpb;

namespace EmbeddedRaft.Samples.EtcdCompatibleServer;

/// <summary>
/// What the services of one member's endpoint share: the member's store and the server's options.
/// The endpoint starts listening before the store has started (so its client URL, with the port
/// it was given, can be registered with the member); until then a call answers etcd's
/// "server stopped" (UNAVAILABLE), which etcd's clients retry.
/// </summary>
internal sealed class EtcdMember(string name, EtcdServerOptions options)
{
    private ReplicatedStore? _store;

    public string Name { get; } = name;

    public EtcdServerOptions Options { get; } = options;

    public ReplicatedStore Store => Volatile.Read(ref _store) ?? throw EtcdErrors.Stopped;

    public bool HasStarted => Volatile.Read(ref _store) is not null;

    public void Started(ReplicatedStore store) => Volatile.Write(ref _store, store);

    /// <summary>
    /// An HTTP handler for calls from this member to another's endpoint (a forwarded MemberPromote):
    /// with TLS, the other member must present this server's own certificate (every member of the
    /// sample serves the same one, which need not be signed by an authority the machine trusts).
    /// </summary>
    public HttpMessageHandler PeerHandler()
    {
        var handler = new SocketsHttpHandler();
        if (Options.TlsCertificatePath is { } path)
        {
            using X509Certificate2 ours = X509Certificate2.CreateFromPemFile(path, Options.TlsKeyPath);
            string thumbprint = ours.Thumbprint;
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                certificate is not null && string.Equals(certificate.GetCertHashString(), thumbprint, StringComparison.OrdinalIgnoreCase);
        }

        return handler;
    }

    /// <summary>etcd's response header: this member and cluster, <paramref name="revision"/>, the current term.</summary>
    public Etcd.ResponseHeader Header(long revision) => Header(revision, Store.Status.RaftTerm);

    public Etcd.ResponseHeader Header(long revision, ulong raftTerm) => new()
    {
        ClusterId = Store.ClusterId,
        MemberId = Store.MemberId,
        Revision = revision,
        RaftTerm = raftTerm,
    };
}
