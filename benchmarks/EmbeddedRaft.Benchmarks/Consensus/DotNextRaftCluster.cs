using System.Net;
using System.Net.Sockets;
using DotNext.Net.Cluster.Consensus.Raft.Membership;
using DotNext.Net.Cluster.Consensus.Raft;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;

namespace EmbeddedRaft.Benchmarks.Consensus;

/// <summary>
/// DotNext.Net.Cluster's Raft (6.12.0) as the side-by-side reference: three <see cref="RaftCluster"/>
/// members in this process over its TCP transport on loopback, each with its persistent
/// <see cref="WriteAheadLog"/> in its own directory and a counting state machine. In 6.12 the WAL
/// always flushes before a commit returns (FlushOnCommit is obsolete, "always true"), so, as with
/// RaftNode, a replicated entry is on disk when the caller hears back.
/// </summary>
/// <remarks>
/// <para>Proposals go to the leader's <c>ReplicateAsync</c> (append, force a replication round, wait
/// until the entry is committed and applied: DotNext's own API for this, and it has no forwarding from
/// followers). DotNext does not expose its fsync count, so <see cref="Fsyncs"/> is null.</para>
/// <para><b>The write-ahead log's chunk size.</b> <see cref="WriteAheadLog.Options.ChunkSize"/>
/// defaults to the system page size (4 KiB): every chunk is a separate memory-mapped file, so 1 KiB
/// entries cost a new file and a new mapping every four entries. At 256 in flight the three logs
/// passed the kernel's limit of memory mappings per process (vm.max_map_count, 65,530 here) within
/// seconds and the runtime stopped the process with "Out of memory.". The harness now sets
/// <see cref="ChunkSizeBytes"/> (64 MiB, our write-ahead log's segment size) and
/// <see cref="WriteAheadLog.MemoryManagementStrategy.PrivateMemory"/>, which the options document
/// as the best write performance; the checkpoint (flush) still runs on every commit
/// (<see cref="WriteAheadLog.Options.FlushInterval"/> zero, the default), so a replicated entry is
/// on disk when the caller hears back.</para>
/// </remarks>
internal sealed class DotNextRaftCluster : IClusterUnderLoad
{
    private readonly RaftCluster[] _members;
    private readonly WriteAheadLog[] _logs;
    private readonly CountingDotNextStateMachine[] _machines;
    private RaftCluster _leader;
    private bool _tls;

    /// <summary>The size of each write-ahead-log chunk file: our own log's segment size (DotNext's default is one page).</summary>
    public const int ChunkSizeBytes = 64 * 1024 * 1024;

    private DotNextRaftCluster(RaftCluster[] members, WriteAheadLog[] logs, CountingDotNextStateMachine[] machines)
    {
        _members = members;
        _logs = logs;
        _machines = machines;
        _leader = members[0];
    }

    public string Name => _tls ? "DotNext.Net.Cluster 6.12.0 (WriteAheadLog, TCP loopback, mutual TLS)" : "DotNext.Net.Cluster 6.12.0 (WriteAheadLog, TCP loopback)";

    public long AppliedCommands => _machines[Array.IndexOf(_members, _leader)].AppliedCommands;

    public long? Fsyncs => null;

    /// <param name="tls">Mutual TLS on DotNext's TCP transport, with the certificates the RaftNode cluster uses (<see cref="Transport.BenchmarkCertificates"/>).</param>
    public static async Task<DotNextRaftCluster> StartAsync(string rootDirectory, CancellationToken cancellationToken, bool tls = false)
    {
        var endpoints = Enumerable.Range(0, 3).Select(_ => new IPEndPoint(IPAddress.Loopback, FreePort())).ToArray();
        var members = new RaftCluster[3];
        var logs = new WriteAheadLog[3];
        var machines = new CountingDotNextStateMachine[3];
        for (int i = 0; i < 3; i++)
        {
            // Null asks DotNext for its in-memory static membership, filled in below.
            var configuration = new RaftCluster.TcpConfiguration(endpoints[i])
            {
                ConfigurationStorage = null!,
                // Generous, as for RaftNode (1 s): on this shared 2-core machine shorter timeouts
                // cost elections mid-run.
                LowerElectionTimeout = 1000,
                UpperElectionTimeout = 2000,
                TransmissionBlockSize = 65536,
                ColdStart = false,
                SslOptions = tls ? SslOptions() : null,
            };
            var storage = (InMemoryClusterConfigurationStorage<EndPoint>)configuration.ConfigurationStorage;
            var builder = storage.CreateInitialConfigurationBuilder();
            foreach (var endpoint in endpoints)
            {
                builder.Add(endpoint);
            }

            builder.Build();
            machines[i] = new CountingDotNextStateMachine();
            string directory = Path.Combine(rootDirectory, $"dotnext-{i + 1}");
            Directory.CreateDirectory(directory);
            logs[i] = new WriteAheadLog(
                new WriteAheadLog.Options
                {
                    Location = directory,
                    ChunkSize = ChunkSizeBytes,
                    MemoryManagement = WriteAheadLog.MemoryManagementStrategy.PrivateMemory,
                },
                machines[i]);
            members[i] = new RaftCluster(configuration) { AuditTrail = logs[i] };
        }

        foreach (var member in members)
        {
            await member.StartAsync(cancellationToken);
        }

        var cluster = new DotNextRaftCluster(members, logs, machines) { _tls = tls };
        await cluster.FindLeaderAsync(cancellationToken);
        return cluster;
    }

    public async ValueTask ProposeAsync(ReadOnlyMemory<byte> command, CancellationToken cancellationToken)
    {
        var leader = _leader;
        try
        {
            await leader.ReplicateAsync(command, context: null, cancellationToken);
        }
        catch (NotLeaderException)
        {
            // Leadership moved: find the new leader for the next call; this one counts as failed.
            await FindLeaderAsync(cancellationToken);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var member in _members)
        {
            await member.StopAsync(CancellationToken.None);
            member.Dispose();
        }

        foreach (var log in _logs)
        {
            await log.DisposeAsync();
        }
    }

    private static DotNext.Net.Security.SslOptions SslOptions()
    {
        var tls = Transport.BenchmarkCertificates.TlsOptions();
        var certificate = tls.ServerCertificate!();
        var options = new DotNext.Net.Security.SslOptions();
        options.ServerOptions.ServerCertificate = certificate;
        options.ServerOptions.ClientCertificateRequired = true;
        options.ServerOptions.RemoteCertificateValidationCallback = tls.IsRemoteCertificateValid;
        options.ClientOptions.TargetHost = "127.0.0.1";
        options.ClientOptions.ClientCertificates = [certificate];
        options.ClientOptions.RemoteCertificateValidationCallback = tls.IsRemoteCertificateValid;
        return options;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private async Task FindLeaderAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        while (true)
        {
            await _members[0].WaitForLeaderAsync(TimeSpan.FromSeconds(30), timeout.Token);
            foreach (var member in _members)
            {
                if (!member.LeadershipToken.IsCancellationRequested)
                {
                    _leader = member;
                    return;
                }
            }

            await Task.Delay(10, timeout.Token);
        }
    }
}
