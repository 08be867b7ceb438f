using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using EmbeddedRaft.Consensus;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Transport.Tcp;
using EmbeddedRaft.Mvcc;
using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.Samples.EtcdCompatibleServer.Services;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace EmbeddedRaft.Samples.EtcdCompatibleServer;

/// <summary>
/// A ReplicatedStore cluster in one process, every member serving the etcd v3 gRPC API on its own
/// endpoint: members m1..mN, their Raft traffic over the TCP transport on loopback, their client
/// endpoints on Kestrel (HTTP/2 without TLS, or TLS from <see cref="EtcdServerOptions"/>).
/// </summary>
/// <remarks>
/// Start order: every member's endpoint and transport first (so the ports they were given are
/// known), then every store with the full member list (names, peer and client URLs) as its
/// initial members. Member ids are derived from the names, so a restart on the same data
/// directory is the same cluster. Disposing stops the endpoints, then the stores.
/// </remarks>
internal sealed class EtcdCluster : IAsyncDisposable
{
    private readonly EtcdServerOptions _options;
    private readonly string _dataDirectory;
    private readonly bool _deleteDataDirectory;
    private readonly ILoggerFactory _loggerFactory;
    private readonly List<EtcdClusterMember> _members = [];

    private EtcdCluster(EtcdServerOptions options, string dataDirectory, bool deleteDataDirectory, ILoggerFactory loggerFactory)
    {
        _options = options;
        _dataDirectory = dataDirectory;
        _deleteDataDirectory = deleteDataDirectory;
        _loggerFactory = loggerFactory;
    }

    public IReadOnlyList<EtcdClusterMember> Members => _members;

    /// <summary>The cluster id every member's transport and store carry (derived from the member ids).</summary>
    public ulong ClusterId { get; private set; }

    public static async Task<EtcdCluster> StartAsync(EtcdServerOptions options, ILoggerFactory loggerFactory, CancellationToken cancellationToken = default)
    {
        options.Validate();
        bool temporary = options.DataDirectory is null;
        string dataDirectory = options.DataDirectory ?? Directory.CreateTempSubdirectory("etcd-compatible-").FullName;
        var cluster = new EtcdCluster(options, dataDirectory, temporary, loggerFactory);
        try
        {
            string[] names = [.. Enumerable.Range(1, options.Members).Select(n => $"m{n}")];
            ulong[] ids = [.. names.Select(MemberId)];
            cluster.ClusterId = DeriveClusterId(ids);
            for (int i = 0; i < names.Length; i++)
            {
                cluster._members.Add(await cluster.OpenMemberAsync(names[i], ids[i], i, cancellationToken).ConfigureAwait(false));
            }

            MemberInfo[] initial = [.. cluster._members.Select(m => m.Info)];
            await Task.WhenAll(cluster._members.Select(m => m.StartStoreAsync(cluster.StoreOptions(m, initial), cancellationToken))).ConfigureAwait(false);

            // As etcd, serve clients once a leader is known (etcd's "ready to serve client
            // requests"): before that every linearizable call would answer "no leader".
            await Task.WhenAll(cluster._members.Select(m => m.WaitForLeaderAsync(cancellationToken))).ConfigureAwait(false);
            foreach (EtcdClusterMember member in cluster._members)
            {
                EtcdServerLog.Serving(loggerFactory.CreateLogger<EtcdCluster>(), member.Info.Name, member.Info.Id, member.ClientUrl, member.Info.PeerUrls[0]);
            }

            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (EtcdClusterMember member in _members)
        {
            await member.DisposeAsync().ConfigureAwait(false);
        }

        if (_deleteDataDirectory && Directory.Exists(_dataDirectory))
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
    }

    /// <summary>etcd-like member ids: 64 bits of a hash of the name, never 0.</summary>
    internal static ulong MemberId(string name)
    {
        ulong id = BitConverter.ToUInt64(SHA256.HashData(Encoding.UTF8.GetBytes("embeddedraft-etcd-member/" + name)));
        return id == 0 ? 1 : id;
    }

    private static ulong DeriveClusterId(IEnumerable<ulong> ids)
    {
        byte[] bytes = [.. ids.Order().SelectMany(BitConverter.GetBytes)];
        ulong id = BitConverter.ToUInt64(SHA256.HashData(bytes));
        return id == 0 ? 1 : id;
    }

    private ReplicatedStoreOptions StoreOptions(EtcdClusterMember member, IReadOnlyList<MemberInfo> initial) => new()
    {
        MemberId = member.Info.Id,
        ClusterId = ClusterId,
        DataDirectory = Path.Combine(_dataDirectory, member.Info.Name),
        InitialMembers = initial,
        Store = new MvccStoreOptions
        {
            MaxRequestBytes = _options.MaxRequestBytes,
            Watch = new WatchOptions { ProgressInterval = _options.WatchProgressInterval },
        },
        // etcd's Raft: check quorum always on (a leader that loses its quorum steps down) and
        // pre-vote (etcd 3.5's default), so a member starved of CPU for a moment does not depose a
        // working leader; snapshots by entry count only (--snapshot-count).
        Raft = new RaftNodeOptions
        {
            SnapshotEveryEntries = _options.SnapshotCount,
            SnapshotEveryLogBytes = 0,
            Raft = new RaftOptions { CheckQuorum = true, PreVote = true },
        },
        LoggerFactory = _loggerFactory,
    };

    private async Task<EtcdClusterMember> OpenMemberAsync(string name, ulong id, int index, CancellationToken cancellationToken)
    {
        var member = new EtcdMember(name, _options);
        int clientPort = _options.FirstClientPort == 0 ? 0 : _options.FirstClientPort + index;
        int peerPort = _options.FirstPeerPort == 0 ? 0 : _options.FirstPeerPort + index;
        WebApplication app = BuildEndpoint(member, clientPort);
        TcpTransport? transport = null;
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
            string clientUrl = (app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>() ?? throw new InvalidOperationException("Kestrel reports no listen address.")).Addresses.Single();
            transport = new TcpTransport(new TcpTransportOptions
            {
                NodeId = id,
                ClusterId = ClusterId,
                ListenAddress = $"{_options.Host}:{peerPort}",
                Logger = _loggerFactory.CreateLogger<TcpTransport>(),
            });
            var info = new MemberInfo(id, name, [$"tcp://{_options.Host}:{transport.LocalEndPoint.Port}"], [clientUrl]);
            return new EtcdClusterMember(member, info, clientUrl, app, transport);
        }
        catch
        {
            if (transport is not null)
            {
                await transport.DisposeAsync().ConfigureAwait(false);
            }

            await app.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private WebApplication BuildEndpoint(EtcdMember member, int port)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(_loggerFactory);
        builder.Services.AddSingleton(typeof(ILogger<>), typeof(Logger<>));
        builder.Services.AddSingleton(member);
        builder.Services.AddGrpc(grpc =>
        {
            grpc.Interceptors.Add<EtcdErrorInterceptor>();
            // etcd's server limits: a request up to --max-request-bytes plus gRPC's overhead,
            // responses of any size.
            grpc.MaxReceiveMessageSize = _options.MaxRequestBytes + (512 * 1024);
            grpc.MaxSendMessageSize = null;
        });
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Listen(IPAddress.Parse(_options.Host), port, listen =>
            {
                listen.Protocols = HttpProtocols.Http2;
                if (_options.TlsCertificatePath is { } certificate)
                {
                    listen.UseHttps(X509Certificate2.CreateFromPemFile(certificate, _options.TlsKeyPath));
                }
            });
        });
        WebApplication app = builder.Build();
        app.MapGrpcService<KvService>();
        app.MapGrpcService<WatchService>();
        app.MapGrpcService<LeaseService>();
        app.MapGrpcService<ClusterService>();
        app.MapGrpcService<MaintenanceService>();
        app.MapGrpcService<AuthService>();
        return app;
    }
}
