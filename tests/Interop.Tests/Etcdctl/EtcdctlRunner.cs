using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace EmbeddedRaft.Interop.Tests.Etcdctl;

/// <summary>
/// Runs etcdctl (v3 API) commands of an <see cref="EtcdctlScript"/> against a cluster and
/// normalises their output: member ids, the cluster id, URLs and captured lease ids become names,
/// so a recording from one cluster compares with another's output. <c>$TMPDIR</c> in a command is
/// a directory of the runner's own (for files etcdctl writes, like a snapshot), printed back as
/// <c>$TMPDIR</c>; it is deleted when the runner is disposed.
/// </summary>
internal sealed partial class EtcdctlRunner(IEtcdCluster cluster) : IDisposable
{
    /// <summary>The name scripts use for <see cref="TemporaryDirectory"/>.</summary>
    public const string TemporaryDirectoryVariable = "$TMPDIR";

    // 'check perf' runs for 60 s by itself; everything else takes well under a second.
    private static readonly TimeSpan s_commandLimit = TimeSpan.FromSeconds(180);

    private readonly Dictionary<string, string> _variables = new(StringComparer.Ordinal);

    /// <summary>A directory of this runner's own, <c>$TMPDIR</c> in scripts.</summary>
    public string TemporaryDirectory { get; } = Directory.CreateTempSubdirectory("etcdctl-").FullName;

    public void Dispose()
    {
        if (Directory.Exists(TemporaryDirectory))
        {
            Directory.Delete(TemporaryDirectory, recursive: true);
        }
    }

    /// <summary>Runs one command written as a script's <c>$ </c> line (without the "$ "), with no input.</summary>
    public Task<List<string>> RunAsync(string commandLine) => RunAsync(new ScriptBlock(ScriptCommand.Parse(commandLine, "inline", 1), []));

    /// <summary>Runs one block's command and returns its normalised output lines.</summary>
    public async Task<List<string>> RunAsync(ScriptBlock block)
    {
        ScriptCommand command = block.Command;
        var start = new ProcessStartInfo(EtcdctlInstall.Path)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["ETCDCTL_API"] = "3";
        IEnumerable<ClusterMember> targets = command.Member == 0 ? cluster.Members : [cluster.Members[command.Member - 1]];
        // Endpoints as host:port (etcdctl's own default form). Given as http://host:port, etcdctl 3.4
        // sends the whole URL as the HTTP/2 :authority of its per-endpoint maintenance calls
        // (endpoint status, hashkv), which ASP.NET Core's Kestrel rejects as malformed
        // (RST_STREAM PROTOCOL_ERROR) where etcd's Go server lets it pass.
        start.ArgumentList.Add("--endpoints=" + string.Join(',', targets.Select(m => new Uri(m.ClientUrl).Authority)));
        foreach (string argument in command.Arguments)
        {
            start.ArgumentList.Add(Substitute(argument));
        }

        using Process process = Process.Start(start) ?? throw new InvalidOperationException("etcdctl did not start.");
        var stdout = new List<string>();
        var stderr = new List<string>();
        var enough = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task readOut = Task.Run(async () =>
        {
            await foreach (string line in ReadLinesAsync(process.StandardOutput).ConfigureAwait(false))
            {
                lock (stdout)
                {
                    stdout.Add(line);
                    if (command.StreamLines > 0 && stdout.Count == command.StreamLines)
                    {
                        enough.TrySetResult();
                    }
                }
            }
        });
        Task readErr = Task.Run(async () =>
        {
            while (await process.StandardError.ReadLineAsync().ConfigureAwait(false) is { } line)
            {
                lock (stderr)
                {
                    stderr.Add(line);
                }
            }
        });

        foreach (string input in block.Input)
        {
            await process.StandardInput.WriteLineAsync(Substitute(input)).ConfigureAwait(false);
        }

        process.StandardInput.Close();

        Task finished = command.StreamLines > 0 ? enough.Task : process.WaitForExitAsync();
        if (await Task.WhenAny(finished, Task.Delay(s_commandLimit)).ConfigureAwait(false) != finished)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"'etcdctl {string.Join(' ', start.ArgumentList)}' did not finish in {s_commandLimit.TotalSeconds} s; "
                + $"stdout so far:\n{string.Join('\n', Snapshot(stdout))}\nstderr:\n{string.Join('\n', Snapshot(stderr))}");
        }

        bool stopped = false;
        if (command.StreamLines > 0)
        {
            process.Kill(entireProcessTree: true);
            stopped = true;
        }

        await process.WaitForExitAsync().ConfigureAwait(false);
        await Task.WhenAll(readOut, readErr).ConfigureAwait(false);

        var raw = new List<string>(command.StreamLines > 0 ? stdout.Take(command.StreamLines) : stdout);
        // etcdctl's client logs warnings (retries) as JSON lines on stderr, with timestamps: not output.
        raw.AddRange(stderr.Where(line => !line.StartsWith('{')));
        if (!stopped && process.ExitCode != 0)
        {
            raw.Add($"[exit {process.ExitCode}]");
        }

        if (command.CaptureVariable is { } variable)
        {
            Match id = HexId().Match(string.Join('\n', raw));
            if (!id.Success)
            {
                Assert.Fail($"'{command.Text}' printed no hex id to capture as ${variable}:\n{string.Join('\n', raw)}");
            }

            _variables[variable] = id.Value;
        }

        List<string> lines = raw.Select(Normalise).ToList();
        foreach (Regex mask in command.Masks)
        {
            lines = lines.Select(line => Mask(mask, line)).ToList();
        }

        if (command.Sort)
        {
            lines.Sort(StringComparer.Ordinal);
        }

        // The script format cannot keep trailing empty lines (they separate blocks).
        while (lines.Count > 0 && lines[^1].Length == 0)
        {
            lines.RemoveAt(lines.Count - 1);
        }

        return lines;
    }

    /// <summary>
    /// Lines ended by '\n' only. A progress bar redraws its line with '\r': of such a line only
    /// what a terminal shows last is kept (TextReader.ReadLine would split it at every '\r').
    /// </summary>
    private static async IAsyncEnumerable<string> ReadLinesAsync(StreamReader reader)
    {
        var buffer = new char[4096];
        var line = new System.Text.StringBuilder();
        int read;
        while ((read = await reader.ReadAsync(buffer.AsMemory()).ConfigureAwait(false)) > 0)
        {
            for (int i = 0; i < read; i++)
            {
                if (buffer[i] == '\n')
                {
                    yield return line.ToString();
                    line.Clear();
                }
                else if (buffer[i] == '\r')
                {
                    line.Clear();
                }
                else
                {
                    line.Append(buffer[i]);
                }
            }
        }

        if (line.Length > 0)
        {
            yield return line.ToString();
        }
    }

    private static List<string> Snapshot(List<string> lines)
    {
        lock (lines)
        {
            return lines.ToList();
        }
    }

    private string Substitute(string text)
    {
        text = text.Replace(TemporaryDirectoryVariable, TemporaryDirectory, StringComparison.Ordinal);
        foreach ((string name, string value) in _variables)
        {
            text = text.Replace("$" + name, value, StringComparison.Ordinal);
        }

        return text;
    }

    private string Normalise(string line)
    {
        line = line.Replace(TemporaryDirectory, TemporaryDirectoryVariable, StringComparison.Ordinal);
        foreach ((string name, string value) in _variables)
        {
            // etcdctl prints a lease id in hex (simple output) and in decimal (JSON output).
            line = ReplaceNumber(line, ulong.Parse(value, NumberStyles.HexNumber, CultureInfo.InvariantCulture), $"<{name}>");
            line = line.Replace(value, $"<{name}>", StringComparison.Ordinal);
        }

        foreach (ClusterMember member in cluster.Members)
        {
            line = ReplaceNumber(line, member.Id, $"<{member.Name}>");
            line = line.Replace(member.ClientUrl, $"<{member.Name}-client>", StringComparison.Ordinal);
            line = line.Replace(new Uri(member.ClientUrl).Authority, $"<{member.Name}-client>", StringComparison.Ordinal);
            line = line.Replace(member.PeerUrl, $"<{member.Name}-peer>", StringComparison.Ordinal);
        }

        return ReplaceNumber(line, cluster.ClusterId, "<cluster>");
    }

    /// <summary>Replaces an id printed in hex (etcdctl's simple output) or decimal (its JSON output).</summary>
    private static string ReplaceNumber(string line, ulong id, string name)
    {
        string hex = id.ToString("x", CultureInfo.InvariantCulture);
        string dec = id.ToString(CultureInfo.InvariantCulture);
        // "Member %16x added to cluster %16x": an id with a leading zero nibble is space-padded.
        line = Regex.Replace(line, $@"\b(Member|cluster) +{hex}\b", $"$1 {name}");
        line = Regex.Replace(line, $@"\b{hex}\b", name);
        return Regex.Replace(line, $@"\b{dec}\b", name);
    }

    /// <summary>Each match of <paramref name="mask"/> with what its groups matched replaced by "*".</summary>
    private static string Mask(Regex mask, string line) => mask.Replace(line, match =>
    {
        string text = match.Value;
        // Right to left so the earlier groups' offsets stay valid.
        for (int g = match.Groups.Count - 1; g >= 1; g--)
        {
            Group group = match.Groups[g];
            if (group.Success)
            {
                int at = group.Index - match.Index;
                text = string.Concat(text.AsSpan(0, at), "*", text.AsSpan(at + group.Length));
            }
        }

        return text;
    });

    [GeneratedRegex(@"\b[0-9a-f]{10,16}\b")]
    private static partial Regex HexId();
}
