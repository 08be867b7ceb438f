using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using EmbeddedRaft.Samples.EtcdCompatibleServer.Etcdserverpb;
using Google.Protobuf;
using Grpc.Net.Client;

namespace EmbeddedRaft.Benchmarks.StoreLoad;

/// <summary>
/// Real etcd 3.4 (Debian's <c>etcd-server</c>, <c>/usr/bin/etcd</c>) as the side-by-side reference:
/// three member processes on loopback ports, each with its own data directory under the run's
/// directory (the same disk as the other systems), default settings except a backend quota of
/// 8 GiB (the load writes gigabytes of revisions between compactions; etcd's default 2 GiB quota
/// would raise its NOSPACE alarm mid-run). The load reaches it through this benchmark's own gRPC
/// client (Grpc.Net.Client over HTTP/2 cleartext, etcd's wire format from the etcd-compatible
/// sample's .proto files), several connections per member, each call on the member the caller names.
/// </summary>
internal sealed class EtcdCluster : IKvClusterUnderLoad
{
    /// <summary>Where Debian installs etcd 3.4's server and client.</summary>
    public const string EtcdPath = "/usr/bin/etcd";

    /// <summary>Where Debian installs etcdctl.</summary>
    public const string EtcdctlPath = "/usr/bin/etcdctl";

    private const long QuotaBackendBytes = 8L * 1024 * 1024 * 1024;

    private readonly Process[] _processes;
    private readonly GrpcChannel[] _channels;
    private readonly KV.KVClient[][] _kv;
    private readonly Maintenance.MaintenanceClient[] _maintenance;
    private int _leaderIndex;
    private long _compactedRevision;
    private uint _nextConnection;

    private EtcdCluster(Process[] processes, GrpcChannel[] channels, KV.KVClient[][] kv, Maintenance.MaintenanceClient[] maintenance, string[] clientUrls)
    {
        _processes = processes;
        _channels = channels;
        _kv = kv;
        _maintenance = maintenance;
        ClientUrls = clientUrls;
    }

    public string Name => $"etcd {Version}";

    /// <summary>The members' client URLs, for etcdctl.</summary>
    public IReadOnlyList<string> ClientUrls { get; }

    /// <summary>The server version the members report.</summary>
    public string Version { get; private set; } = "3.4";

    public int LeaderIndex => _leaderIndex;

    public TimeSpan ExternalProcessorTime
    {
        get
        {
            var total = TimeSpan.Zero;
            foreach (var process in _processes)
            {
                process.Refresh();
                total += process.HasExited ? TimeSpan.Zero : process.TotalProcessorTime;
            }

            return total;
        }
    }

    /// <summary>
    /// True when etcd and etcdctl are installed; else installs Debian's etcd-server and etcd-client
    /// with apt-get, saying so on <paramref name="output"/>, and returns whether that worked.
    /// </summary>
    public static async Task<bool> EnsureInstalledAsync(TextWriter output)
    {
        if (File.Exists(EtcdPath) && File.Exists(EtcdctlPath))
        {
            return true;
        }

        await output.WriteLineAsync("etcd 3.4 is not installed: installing Debian's etcd-server and etcd-client (apt-get update; apt-get install -y etcd-server etcd-client) ...");
        foreach (string arguments in new[] { "update", "install -y etcd-server etcd-client" })
        {
            var (exitCode, text) = await RunAsync("apt-get", arguments, TimeSpan.FromMinutes(5));
            if (exitCode != 0)
            {
                await output.WriteLineAsync($"apt-get {arguments} failed with exit code {exitCode}: {text.Trim()}");
                return false;
            }
        }

        return File.Exists(EtcdPath) && File.Exists(EtcdctlPath);
    }

    public static async Task<EtcdCluster> StartAsync(string directory, int connectionsPerMember, CancellationToken cancellationToken)
    {
        int[] ports = FreePorts(6);
        int[] clientPorts = ports[..3];
        int[] peerPorts = ports[3..];
        string token = $"store-load-{Guid.NewGuid():N}";
        string initialCluster = string.Join(',', Enumerable.Range(0, 3).Select(i => $"m{i + 1}=http://127.0.0.1:{peerPorts[i]}"));
        var processes = new Process[3];
        var clientUrls = new string[3];
        for (int i = 0; i < 3; i++)
        {
            string dataDirectory = Path.Combine(directory, $"etcd-{i + 1}");
            Directory.CreateDirectory(dataDirectory);
            clientUrls[i] = $"http://127.0.0.1:{clientPorts[i]}";
            string peerUrl = $"http://127.0.0.1:{peerPorts[i]}";
            var start = new ProcessStartInfo(EtcdPath)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (string argument in new[]
            {
                "--name", $"m{i + 1}",
                "--data-dir", dataDirectory,
                "--listen-client-urls", clientUrls[i],
                "--advertise-client-urls", clientUrls[i],
                "--listen-peer-urls", peerUrl,
                "--initial-advertise-peer-urls", peerUrl,
                "--initial-cluster", initialCluster,
                "--initial-cluster-token", token,
                "--initial-cluster-state", "new",
                "--quota-backend-bytes", QuotaBackendBytes.ToString(CultureInfo.InvariantCulture),
                "--logger", "zap",
                "--log-outputs", Path.Combine(directory, $"etcd-{i + 1}.log"),
            })
            {
                start.ArgumentList.Add(argument);
            }

            var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {EtcdPath}.");
            // Drain anything written to the console (the logs go to the file above).
            process.OutputDataReceived += (_, _) => { };
            process.ErrorDataReceived += (_, _) => { };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            processes[i] = process;
        }

        var channels = new GrpcChannel[3 * connectionsPerMember];
        var kv = new KV.KVClient[3][];
        var maintenance = new Maintenance.MaintenanceClient[3];
        for (int i = 0; i < 3; i++)
        {
            kv[i] = new KV.KVClient[connectionsPerMember];
            for (int c = 0; c < connectionsPerMember; c++)
            {
                // One channel = one HTTP/2 connection (its own handler); more open only if the
                // server's concurrent-stream limit is reached.
                var channel = channels[(i * connectionsPerMember) + c] = GrpcChannel.ForAddress(clientUrls[i], new GrpcChannelOptions
                {
                    HttpHandler = new SocketsHttpHandler
                    {
                        EnableMultipleHttp2Connections = true,
                        PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
                    },
                });
                kv[i][c] = new KV.KVClient(channel);
            }

            maintenance[i] = new Maintenance.MaintenanceClient(channels[i * connectionsPerMember]);
        }

        var cluster = new EtcdCluster(processes, channels, kv, maintenance, clientUrls);
        try
        {
            await cluster.WaitForLeaderAsync(cancellationToken);
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }

        return cluster;
    }

    public bool Supports(StoreLoadWorkload workload) => true;

    public async ValueTask PutAsync(int member, ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> value, CancellationToken cancellationToken) =>
        await Kv(member).PutAsync(
            new PutRequest { Key = UnsafeByteOperations.UnsafeWrap(key), Value = UnsafeByteOperations.UnsafeWrap(value) },
            cancellationToken: cancellationToken);

    public async ValueTask<int> GetAsync(int member, ReadOnlyMemory<byte> key, bool linearizable, CancellationToken cancellationToken)
    {
        var response = await Kv(member).RangeAsync(
            new RangeRequest { Key = UnsafeByteOperations.UnsafeWrap(key), Serializable = !linearizable },
            cancellationToken: cancellationToken);
        return response.Kvs.Count == 0 ? -1 : response.Kvs[0].Value.Length;
    }

    public async ValueTask<bool> CompareAndPutAsync(int member, ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> expected, ReadOnlyMemory<byte> value, CancellationToken cancellationToken)
    {
        var wrappedKey = UnsafeByteOperations.UnsafeWrap(key);
        var request = new TxnRequest();
        request.Compare.Add(new Compare
        {
            Result = Compare.Types.CompareResult.Equal,
            Target = Compare.Types.CompareTarget.Value,
            Key = wrappedKey,
            Value = UnsafeByteOperations.UnsafeWrap(expected),
        });
        request.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = wrappedKey, Value = UnsafeByteOperations.UnsafeWrap(value) } });
        request.Failure.Add(new RequestOp { RequestRange = new RangeRequest { Key = wrappedKey } });
        var response = await Kv(member).TxnAsync(request, cancellationToken: cancellationToken);
        return response.Succeeded;
    }

    public async ValueTask CompactAsync(CancellationToken cancellationToken)
    {
        var status = await _maintenance[_leaderIndex].StatusAsync(new StatusRequest(), cancellationToken: cancellationToken);
        long revision = status.Header.Revision;
        if (revision > _compactedRevision)
        {
            await _kv[_leaderIndex][0].CompactAsync(new CompactionRequest { Revision = revision, Physical = true }, cancellationToken: cancellationToken);
            _compactedRevision = revision;
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var channel in _channels)
        {
            channel.Dispose();
        }

        foreach (var process in _processes)
        {
            if (!process.HasExited)
            {
                process.Kill();
            }

            await process.WaitForExitAsync();
            process.Dispose();
        }
    }

    /// <summary>Runs a program to completion and returns its exit code and its output (stdout then stderr).</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(string program, string arguments, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(program, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["ETCDCTL_API"] = "3";
        start.Environment["DEBIAN_FRONTEND"] = "noninteractive";
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {program}.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill();
            await process.WaitForExitAsync();
        }

        return (process.ExitCode, await stdout + await stderr);
    }

    private KV.KVClient Kv(int member)
    {
        var connections = _kv[member];
        return connections[Interlocked.Increment(ref _nextConnection) % (uint)connections.Length];
    }

    private async Task WaitForLeaderAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        while (true)
        {
            try
            {
                var statuses = new StatusResponse[3];
                for (int i = 0; i < 3; i++)
                {
                    statuses[i] = await _maintenance[i].StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(2), cancellationToken: timeout.Token);
                }

                ulong leader = statuses[0].Leader;
                int index = Array.FindIndex(statuses, s => s.Header.MemberId == leader);
                if (leader != 0 && index >= 0 && statuses.All(s => s.Leader == leader))
                {
                    _leaderIndex = index;
                    Version = statuses[0].Version;
                    return;
                }
            }
            catch (Grpc.Core.RpcException) when (!timeout.IsCancellationRequested)
            {
                // Not listening yet, or no leader yet: ask again.
            }

            foreach (var process in _processes)
            {
                if (process.HasExited)
                {
                    throw new InvalidOperationException($"etcd exited with code {process.ExitCode} while the cluster was starting; see its log beside the data directories.");
                }
            }

            await Task.Delay(100, timeout.Token);
        }
    }

    private static int[] FreePorts(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToArray();
        try
        {
            foreach (var listener in listeners)
            {
                listener.Start();
            }

            return listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        }
        finally
        {
            foreach (var listener in listeners)
            {
                listener.Stop();
            }
        }
    }
}
