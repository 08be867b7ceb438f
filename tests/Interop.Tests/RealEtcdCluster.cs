using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using EmbeddedRaft.Interop.Tests.Etcdctl;

namespace EmbeddedRaft.Interop.Tests;

/// <summary>
/// A real etcd 3.4 cluster of three processes (m1, m2, m3) on loopback, on fresh temporary data
/// directories: what the testdata was recorded from (REWRITE=1). Disposing it kills the processes
/// and deletes the directories.
/// </summary>
internal sealed class RealEtcdCluster : IEtcdCluster
{
    private static readonly TimeSpan s_startLimit = TimeSpan.FromSeconds(60);

    private readonly List<Process> _processes = [];
    private readonly string _root;

    private RealEtcdCluster(string root)
    {
        _root = root;
    }

    public IReadOnlyList<ClusterMember> Members { get; private set; } = [];

    public ulong ClusterId { get; private set; }

    public static async Task<RealEtcdCluster> StartAsync()
    {
        string etcd = EtcdctlInstall.EtcdPath;
        var cluster = new RealEtcdCluster(Directory.CreateTempSubdirectory("interop-etcd-").FullName);
        try
        {
            int[] ports = FreePorts(6);
            string[] clients = [.. Enumerable.Range(0, 3).Select(i => $"http://127.0.0.1:{ports[i]}")];
            string[] peers = [.. Enumerable.Range(0, 3).Select(i => $"http://127.0.0.1:{ports[3 + i]}")];
            string initial = string.Join(',', Enumerable.Range(0, 3).Select(i => $"m{i + 1}={peers[i]}"));
            var ready = new List<Task>();
            for (int i = 0; i < 3; i++)
            {
                ready.Add(cluster.StartMember(etcd, $"m{i + 1}", clients[i], peers[i], initial));
            }

            Task all = Task.WhenAll(ready);
            if (await Task.WhenAny(all, Task.Delay(s_startLimit)).ConfigureAwait(false) != all)
            {
                throw new TimeoutException($"etcd did not report 'ready to serve client requests' on all three members within {s_startLimit.TotalSeconds} s.");
            }

            await all.ConfigureAwait(false);
            await cluster.LearnIdsAsync(clients).ConfigureAwait(false);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public ValueTask DisposeAsync()
    {
        foreach (Process process in _processes)
        {
            try
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
            }
            catch (InvalidOperationException)
            {
                // Already exited.
            }

            process.Dispose();
        }

        Directory.Delete(_root, recursive: true);
        return ValueTask.CompletedTask;
    }

    /// <summary>Starts one member; the task completes when its log says it serves clients.</summary>
    private Task StartMember(string etcd, string name, string client, string peer, string initialCluster)
    {
        var start = new ProcessStartInfo(etcd) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (string argument in new[]
        {
            "--name", name,
            "--data-dir", Path.Combine(_root, name),
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", initialCluster,
            "--initial-cluster-token", "interop",
            "--initial-cluster-state", "new",
            // etcd refuses a member add until every voter has been connected for 5 s ("unhealthy
            // cluster"): a guard against a wall-clock delay the recordings have no use for.
            "--strict-reconfig-check=false",
        })
        {
            start.ArgumentList.Add(argument);
        }

        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Process process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start '{etcd}'.");
        _processes.Add(process);
        void Read(object sender, DataReceivedEventArgs line)
        {
            if (line.Data is null)
            {
                ready.TrySetException(new InvalidOperationException($"etcd {name} exited (code {(process.HasExited ? process.ExitCode : -1)}) before serving clients."));
            }
            else if (line.Data.Contains("ready to serve client requests", StringComparison.Ordinal))
            {
                ready.TrySetResult();
            }
        }

        process.ErrorDataReceived += Read;
        process.OutputDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        return ready.Task;
    }

    private async Task LearnIdsAsync(string[] clients)
    {
        var start = new ProcessStartInfo(EtcdctlInstall.Path) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.Environment["ETCDCTL_API"] = "3";
        start.ArgumentList.Add("--endpoints=" + clients[0]);
        start.ArgumentList.Add("member");
        start.ArgumentList.Add("list");
        start.ArgumentList.Add("-w");
        start.ArgumentList.Add("json");
        using Process process = Process.Start(start)!;
        string json = await process.StandardOutput.ReadToEndAsync().ConfigureAwait(false);
        await process.WaitForExitAsync().ConfigureAwait(false);
        using JsonDocument document = JsonDocument.Parse(json);
        ClusterId = document.RootElement.GetProperty("header").GetProperty("cluster_id").GetUInt64();
        var members = new List<ClusterMember>();
        foreach (JsonElement member in document.RootElement.GetProperty("members").EnumerateArray())
        {
            members.Add(new ClusterMember(
                member.GetProperty("name").GetString()!,
                member.GetProperty("ID").GetUInt64(),
                member.GetProperty("clientURLs")[0].GetString()!,
                member.GetProperty("peerURLs")[0].GetString()!));
        }

        Members = [.. members.OrderBy(m => m.Name, StringComparer.Ordinal)];
    }

    /// <summary>Ports the kernel hands out now (all held at once so they differ).</summary>
    internal static int[] FreePorts(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        foreach (TcpListener listener in listeners)
        {
            listener.Start();
        }

        int[] ports = [.. listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port)];
        foreach (TcpListener listener in listeners)
        {
            listener.Stop();
        }

        return ports;
    }
}
