using System.Diagnostics;
using System.Globalization;
using EmbeddedRaft.Benchmarks.Wal;

namespace EmbeddedRaft.Benchmarks.Consensus;

/// <summary>
/// The whole-cluster load generator (a console mode, not BenchmarkDotNet: closed-loop latency
/// percentiles need every sample). For each system and each concurrency it starts a fresh
/// three-node cluster on the real disk (a directory per node under the temp path), runs that many
/// closed-loop callers each proposing 1 KiB commands one after another for a fixed time after a
/// warm-up, and prints throughput, p50/p99/p999 latency, fsyncs/s and entries per fsync, and the
/// process's CPU time, allocated bytes and garbage collections per applied proposal over the
/// measured window, with the collector's cost (GcCost: collections per generation, pause and background
/// collector CPU per proposal); first, the disk's raw 4 KiB write + fdatasync p50 and the load average.
/// </summary>
/// <remarks>
/// <c>dotnet run -c Release --project benchmarks/EmbeddedRaft.Benchmarks -- cluster-load
/// [--systems raftnode,dotnext] [--inflight 1,16,256,1024] [--seconds 10] [--warmup-seconds 2]
/// [--transport inprocess|tcp|tcp,inprocess] [--tls] [--shape] [--readies-in-flight 1,8] [--snapshot-every-entries N] [--log-cache-bytes N] [--retained-entries N] [--fsync-ms N]</c> (the transports of the RaftNode cluster:
/// with both, each concurrency's rows run back to back over each;
/// DotNext always runs over its TCP transport; <c>--tls</c> puts both TCP transports under mutual TLS
/// with the same run-time P-256 certificates (RaftNode only with <c>--transport tcp</c>); each value of <c>--readies-in-flight</c> runs the
/// RaftNode rows again with that many Readies written ahead of their fsync, RaftNodeOptions.MaxReadiesInFlight;
/// <c>--snapshot-every-entries</c> sets the RaftNodes' RaftNodeOptions.SnapshotEveryEntries, default 10 000;
/// <c>--log-cache-bytes</c> and <c>--retained-entries</c> set their logs' DurableRaftLogOptions.CachedEntryBytes and RetainedEntries (what the log keeps in memory and below a snapshot);
/// the environment variable <c>CLUSTER_LOAD_GC=1</c> prints per row what the garbage collector did (GcProbe: collections by generation and reason, pauses, promoted bytes, large-object allocations by type; a diagnostic);
/// <c>--shape</c> wraps each RaftNode's transport in a MessageShapeTransport and prints, per row, the messages sent by type, entries and bytes per Append and messages per hand-off to the node (a diagnostic: a few interlocked increments per message, not for A/B figures);
/// <c>--fsync-ms</c> replaces the RaftNodes' every flush by a sleep of that long, FixedFsyncFileSystem: a diagnostic of the pipeline's structure without the disk's noise)
/// </remarks>
internal static class ClusterLoadGenerator
{
    private const int CommandBytes = 1024;

    public static async Task<int> RunAsync(string[] args)
    {
        var settings = Settings.Parse(args);
        string root = BenchmarkDirectory.Create("cluster-load");
        try
        {
            double rawP50 = DiskSyncProbe.MeasureP50Microseconds(root, 2000);
            Console.WriteLine(FormattableString.Invariant($"raw 4 KiB write + fdatasync p50: {rawP50:F0} us ({root})"));
            Console.WriteLine(FormattableString.Invariant($"{Environment.ProcessorCount} processors, server GC {System.Runtime.GCSettings.IsServerGC}, load average {LoadAverage()}"));
            Console.WriteLine("| system | in flight | proposals/s | p50 ms | p99 ms | p999 ms | fsyncs/s | entries per fsync | failed | CPU us per proposal | allocated B per proposal | gen0/gen1/gen2 GCs | GC pause us per proposal | background GC CPU us per proposal |");
            Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            var notes = new List<string>();
            foreach (string system in settings.Systems)
            {
                int?[] depths = system == "raftnode" && settings.ReadiesInFlight is { } d ? [.. d.Select(v => (int?)v)] : [null];
                // DotNext has its own TCP transport only; RaftNode runs once per transport asked
                // for, the transports' rows of one concurrency back to back (the same machine state).
                string[] transports = system == "raftnode" ? settings.Transports : ["tcp"];
                foreach (int inFlight in settings.InFlight)
                {
                    foreach (string transport in transports)
                    {
                        foreach (int? depth in depths)
                        {
                            string directory = Path.Combine(root, $"{system}-{transport}-{inFlight}-{depth}");
                            Directory.CreateDirectory(directory);
                            await using var cluster = await StartAsync(system, directory, transport == "tcp", settings.Tls, depth, settings.SnapshotEveryEntries, settings.FsyncMilliseconds, settings.Shape, settings.LogCacheBytes, settings.RetainedEntries);
                            var result = await RunOneAsync(cluster, inFlight, settings);
                            string name = depth is { } n ? $"{cluster.Name}, {n} Readies in flight" : cluster.Name;
                            Console.WriteLine(result.ToMarkdownRow(name, inFlight));
                            if (cluster.TransportSummary is { } summary)
                            {
                                notes.Add(FormattableString.Invariant($"// {name}, {inFlight} in flight: {summary}"));
                            }
                        }
                    }
                }
            }

            notes.ForEach(Console.WriteLine);
            return 0;
        }
        finally
        {
            BenchmarkDirectory.Delete(root);
        }
    }

    private static async Task<IClusterUnderLoad> StartAsync(string system, string directory, bool tcp, bool tls, int? readiesInFlight, ulong? snapshotEveryEntries, double? fsyncMilliseconds, bool shape, long? logCacheBytes, ulong? retainedEntries) => system switch
    {
        "raftnode" => await RaftNodeCluster.StartAsync(directory, CancellationToken.None, tcp, readiesInFlight, tls, snapshotEveryEntries, fsyncMilliseconds is { } ms ? TimeSpan.FromMilliseconds(ms) : null, shape, logCacheBytes, retainedEntries),
        "dotnext" => await DotNextRaftCluster.StartAsync(directory, CancellationToken.None, tls),
        _ => throw new ArgumentException($"Unknown system '{system}': raftnode or dotnext."),
    };

    private static async Task<LoadResult> RunOneAsync(IClusterUnderLoad cluster, int inFlight, Settings settings)
    {
        var command = new byte[CommandBytes];
        Random.Shared.NextBytes(command);
        using var stop = new CancellationTokenSource();
        bool measuring = false;
        long failures = 0;
        var samples = new List<double>[inFlight];
        var callers = new Task[inFlight];
        for (int i = 0; i < inFlight; i++)
        {
            var mine = samples[i] = new List<double>(1024);
            callers[i] = Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    long start = Stopwatch.GetTimestamp();
                    try
                    {
                        await cluster.ProposeAsync(command, CancellationToken.None);
                    }
#pragma warning disable CA1031 // A failed proposal (leadership moved) is counted and reported, not fatal.
                    catch (Exception failure)
#pragma warning restore CA1031
                    {
                        if (Interlocked.Increment(ref failures) == 1)
                        {
                            // The first failure of a row, for the record (later ones are usually the same).
                            Console.Error.WriteLine($"<!-- {inFlight} in flight: first failed proposal: {failure.GetType().Name}: {failure.Message} -->");
                        }

                        continue;
                    }

                    if (Volatile.Read(ref measuring))
                    {
                        mine.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                    }
                }
            });
        }

        await Task.Delay(TimeSpan.FromSeconds(settings.WarmupSeconds));
        long appliedBefore = cluster.AppliedCommands;
        long? fsyncsBefore = cluster.Fsyncs;
        double? fsyncMillisecondsBefore = cluster.FsyncMilliseconds;
        long? readBackBefore = cluster.EntriesReadBack;
        var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
        long allocatedBefore = GC.GetTotalAllocatedBytes(precise: false);
        var gcBefore = GcCost.Now();
        StoreLoad.AllocationSampler.Instance?.Start();
        GcProbe.Instance?.Start();
        var clock = Stopwatch.StartNew();
        Volatile.Write(ref measuring, true);
        await Task.Delay(TimeSpan.FromSeconds(settings.Seconds));
        Volatile.Write(ref measuring, false);
        double elapsedSeconds = clock.Elapsed.TotalSeconds;
        long applied = cluster.AppliedCommands - appliedBefore;
        long? fsyncs = cluster.Fsyncs - fsyncsBefore;
        double? fsyncMilliseconds = cluster.FsyncMilliseconds - fsyncMillisecondsBefore;
        if (fsyncs is > 0 && fsyncMilliseconds is { } spent)
        {
            // Whether the disk bounds the row: each node's log flushing all the time (100%) means
            // fsyncs back to back, and only larger groups (or a faster disk) can go faster.
            Console.WriteLine(FormattableString.Invariant($"<!-- {inFlight} in flight: fsync mean {spent / fsyncs.Value:F2} ms; each node's log flushing {spent / 3 / (elapsedSeconds * 1000) * 100:F0}% of the time; entries read back from the WAL (not cached) {cluster.EntriesReadBack - readBackBefore} -->"));
        }

        // The process's own cost (the whole cluster, callers included) per applied proposal: on a
        // shared machine CPU time per proposal is steadier than proposals/s.
        double cpuMicroseconds = (Process.GetCurrentProcess().TotalProcessorTime - cpuBefore).TotalMicroseconds;
        long allocated = GC.GetTotalAllocatedBytes(precise: false) - allocatedBefore;
        var gc = GcCost.Now() - gcBefore;
        if (GcProbe.Instance is { } probe)
        {
            Console.WriteLine($"<!-- {inFlight} in flight: {probe.Stop(applied)} -->");
        }

        if (StoreLoad.AllocationSampler.Instance is { } sampler)
        {
            Console.WriteLine($"<!-- {inFlight} in flight: {sampler.Stop(applied)} -->");
        }

        await stop.CancelAsync();
        await Task.WhenAll(callers);

        var all = samples.SelectMany(s => s).ToArray();
        Array.Sort(all);
        return new LoadResult(
            ProposalsPerSecond: all.Length / elapsedSeconds,
            AppliedPerSecond: applied / elapsedSeconds,
            P50Ms: Percentile(all, 0.50),
            P99Ms: Percentile(all, 0.99),
            P999Ms: Percentile(all, 0.999),
            FsyncsPerSecond: fsyncs / elapsedSeconds,
            Failures: Interlocked.Read(ref failures),
            EntriesPerFsync: fsyncs is > 0 ? (double)applied / fsyncs.Value * 3 : null,
            CpuMicrosecondsPerProposal: applied > 0 ? cpuMicroseconds / applied : double.NaN,
            AllocatedBytesPerProposal: applied > 0 ? (double)allocated / applied : double.NaN,
            Gc: gc.Describe(applied));
    }

    // The machine's 1/5/15-minute load average (Linux), to record beside the figures.
    private static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
#pragma warning disable CA1031 // Not Linux: the figure is informative only.
        catch (Exception)
#pragma warning restore CA1031
        {
            return "n/a";
        }
    }

    private static double Percentile(double[] sorted, double quantile) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)(quantile * sorted.Length))];

    private sealed record LoadResult(
        double ProposalsPerSecond,
        double AppliedPerSecond,
        double P50Ms,
        double P99Ms,
        double P999Ms,
        double? FsyncsPerSecond,
        long Failures,
        double? EntriesPerFsync,
        double CpuMicrosecondsPerProposal,
        double AllocatedBytesPerProposal,
        string Gc)
    {
        public string ToMarkdownRow(string name, int inFlight) => string.Create(
            CultureInfo.InvariantCulture,
            $"| {name} | {inFlight} | {ProposalsPerSecond:F0} (applied {AppliedPerSecond:F0}) | {P50Ms:F2} | {P99Ms:F2} | {P999Ms:F2} | {(FsyncsPerSecond is { } f ? f.ToString("F0", CultureInfo.InvariantCulture) : "n/a")} | {(EntriesPerFsync is { } e ? e.ToString("F1", CultureInfo.InvariantCulture) : "n/a")} | {Failures} | {CpuMicrosecondsPerProposal:F1} | {AllocatedBytesPerProposal:F0} | {Gc} |");
    }

    private sealed record Settings(string[] Systems, int[] InFlight, double Seconds, double WarmupSeconds, string[]? TransportList = null, int[]? ReadiesInFlight = null, bool Tls = false, ulong? SnapshotEveryEntries = null, double? FsyncMilliseconds = null, bool Shape = false, long? LogCacheBytes = null, ulong? RetainedEntries = null)
    {
        /// <summary>The RaftNode cluster's transports, in the order given (default: in-process only).</summary>
        public string[] Transports => TransportList ?? ["inprocess"];

        public static Settings Parse(string[] args)
        {
            var settings = new Settings(["raftnode", "dotnext"], [1, 16, 256, 1024], 10, 2);
            for (int i = 0; i < args.Length; i++)
            {
                if (args[i] == "--tls")
                {
                    settings = settings with { Tls = true };
                    continue;
                }

                if (args[i] == "--shape")
                {
                    settings = settings with { Shape = true };
                    continue;
                }

                string value = i + 1 < args.Length ? args[++i] : throw new CommandLineException($"{args[i]} needs a value.");
                settings = args[i - 1] switch
                {
                    "--systems" => value.Split(',') is var systems && systems.All(s => s is "raftnode" or "dotnext")
                        ? settings with { Systems = systems }
                        : throw new CommandLineException($"--systems takes raftnode, dotnext or both separated by a comma, not '{value}'."),
                    "--inflight" => settings with { InFlight = CommandLine.Numbers<int>("--inflight", value) },
                    "--seconds" => settings with { Seconds = CommandLine.Number<double>("--seconds", value) },
                    "--warmup-seconds" => settings with { WarmupSeconds = CommandLine.Number<double>("--warmup-seconds", value) },
                    "--log-cache-bytes" => settings with { LogCacheBytes = CommandLine.Number<long>("--log-cache-bytes", value) },
                    "--retained-entries" => settings with { RetainedEntries = CommandLine.Number<ulong>("--retained-entries", value) },
                    "--fsync-ms" => settings with { FsyncMilliseconds = CommandLine.Number<double>("--fsync-ms", value) },
                    "--snapshot-every-entries" => settings with { SnapshotEveryEntries = CommandLine.Number<ulong>("--snapshot-every-entries", value) },
                    "--readies-in-flight" => settings with { ReadiesInFlight = CommandLine.Numbers<int>("--readies-in-flight", value) },
                    "--transport" => value.Split(',') is var list && list.All(t => t is "tcp" or "inprocess")
                        ? settings with { TransportList = list }
                        : throw new CommandLineException($"--transport takes tcp, inprocess or both separated by a comma, not '{value}'."),
                    _ => throw new CommandLineException($"Unknown option '{args[i - 1]}'."),
                };
            }

            if (settings.Tls && !settings.Transports.Contains("tcp") && settings.Systems.Contains("raftnode"))
            {
                throw new CommandLineException("--tls applies to the TCP transport: add --transport tcp.");
            }

            return settings;
        }
    }
}
