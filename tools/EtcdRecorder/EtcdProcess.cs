using System.Diagnostics;

namespace EmbeddedRaft.EtcdRecorder;

/// <summary>
/// A real etcd started on localhost on a fresh, temporary data directory, with its default limits
/// (128 operations per txn, 1.5 MiB per request): the limits the recordings are taken under.
/// Disposing it kills the process and deletes the data directory.
/// </summary>
internal sealed class EtcdProcess : IDisposable
{
    private readonly Process _process;
    private readonly string _dataDirectory;

    private EtcdProcess(Process process, string dataDirectory, Uri clientEndpoint)
    {
        _process = process;
        _dataDirectory = dataDirectory;
        ClientEndpoint = clientEndpoint;
    }

    public Uri ClientEndpoint { get; }

    /// <summary>Starts etcd and waits (at most 30 s) until its gateway answers.</summary>
    public static async Task<EtcdProcess> StartAsync(string binary, int clientPort, int peerPort)
    {
        string dataDirectory = Path.Combine(Path.GetTempPath(), $"etcd-recorder-{Environment.ProcessId}-{Guid.NewGuid():N}");
        // etcd refuses URLs with a path, even "/": pass them without the trailing slash Uri adds.
        string client = $"http://127.0.0.1:{clientPort}";
        string peer = $"http://127.0.0.1:{peerPort}";
        var start = new ProcessStartInfo(binary)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (string argument in new[]
        {
            "--name", "recorder",
            "--data-dir", dataDirectory,
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", $"recorder={peer}",
        })
        {
            start.ArgumentList.Add(argument);
        }

        Process process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start '{binary}'.");
        // etcd logs to stderr; drain both pipes so it never blocks on a full pipe, keeping the last
        // lines to explain a failed start.
        var lastLines = new Queue<string>();
        void Keep(object sender, DataReceivedEventArgs line)
        {
            lock (lastLines)
            {
                if (line.Data is not null)
                {
                    lastLines.Enqueue(line.Data);
                    if (lastLines.Count > 20)
                    {
                        lastLines.Dequeue();
                    }
                }
            }
        }

        process.OutputDataReceived += Keep;
        process.ErrorDataReceived += Keep;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var etcd = new EtcdProcess(process, dataDirectory, new Uri(client));
        try
        {
            await EtcdGateway.WaitUntilServingAsync(etcd.ClientEndpoint, TimeSpan.FromSeconds(30), () => process.HasExited).ConfigureAwait(false);
            return etcd;
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException)
        {
            etcd.Dispose();
            string log;
            lock (lastLines)
            {
                log = string.Join(Environment.NewLine, lastLines);
            }

            throw new InvalidOperationException($"etcd ({binary}) did not start serving on {client}. Its last lines:{Environment.NewLine}{log}", e);
        }
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }

        _process.Dispose();
        if (Directory.Exists(_dataDirectory))
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
    }
}
