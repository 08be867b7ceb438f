using System.Globalization;
using System.Text.Json.Nodes;

namespace EmbeddedRaft.EtcdRecorder;

/// <summary>
/// Records a real etcd's answers to seeded operation sequences as the testdata the EtcdCompat replay
/// test checks MvccStore against. See docs/etcd-compat.md.
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        RecorderOptions options;
        try
        {
            options = RecorderOptions.Parse(args);
        }
        catch (Exception e) when (e is ArgumentException or FormatException or OverflowException or UriFormatException)
        {
            await Console.Error.WriteLineAsync(e.Message + Environment.NewLine + Environment.NewLine + RecorderOptions.Usage).ConfigureAwait(false);
            return 2;
        }

        Directory.CreateDirectory(options.OutputDirectory);
        try
        {
            foreach (int seed in options.Seeds)
            {
                if (options.ConnectEndpoint is Uri endpoint)
                {
                    await RecordAsync(endpoint, seed, options).ConfigureAwait(false);
                }
                else
                {
                    using EtcdProcess etcd = await EtcdProcess.StartAsync(options.EtcdBinary, options.ClientPort, options.PeerPort).ConfigureAwait(false);
                    await RecordAsync(etcd.ClientEndpoint, seed, options).ConfigureAwait(false);
                }
            }
        }
        catch (Exception e) when (e is InvalidOperationException or HttpRequestException or System.ComponentModel.Win32Exception)
        {
            // No etcd binary, etcd not starting, not empty or not answering: say so without a stack trace.
            await Console.Error.WriteLineAsync("EtcdRecorder: " + e.Message).ConfigureAwait(false);
            return 1;
        }

        return 0;
    }

    private static async Task RecordAsync(Uri endpoint, int seed, RecorderOptions options)
    {
        using var gateway = new EtcdGateway(endpoint);
        await RequireEmptyAsync(gateway, endpoint).ConfigureAwait(false);
        string version = await gateway.ServerVersionAsync().ConfigureAwait(false);
        string path = Path.Combine(options.OutputDirectory, string.Create(CultureInfo.InvariantCulture, $"{(options.Leases ? "lease-" : "")}seed-{seed}.jsonl"));
        ISequenceGenerator generator = options.Leases ? new LeaseOperationGenerator(seed) : new OperationGenerator(seed);
        int errors = 0;
        using (var writer = new RecordingWriter(path, seed, options.OperationsPerSeed, version))
        {
            for (int i = 0; i < options.OperationsPerSeed; i++)
            {
                GeneratedOperation operation = generator.Next();
                GatewayResult result = await gateway.PostAsync(operation.Path, operation.Request).ConfigureAwait(false);
                generator.Observe(operation, result);
                writer.Write(operation, result);
                errors += result.IsError ? 1 : 0;
            }
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"seed {seed}: {options.OperationsPerSeed} operations ({errors} refused by etcd {version}) -> {path}"));
    }

    /// <summary>A recording is replayed against an empty store, so it must start on an empty etcd
    /// (revision 1, nothing ever written).</summary>
    private static async Task RequireEmptyAsync(EtcdGateway gateway, Uri endpoint)
    {
        GatewayResult all = await gateway.PostAsync("kv/range", new JsonObject
        {
            ["key"] = "AA==",
            ["range_end"] = "AA==",
            ["count_only"] = true,
        }).ConfigureAwait(false);
        string? revision = all.Response?["header"]?["revision"]?.GetValue<string>();
        if (revision != "1")
        {
            throw new InvalidOperationException($"etcd at {endpoint} is not empty (revision {revision ?? "unknown"}); record against a fresh etcd.");
        }
    }
}
