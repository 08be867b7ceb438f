using System.Globalization;
using System.Text.RegularExpressions;
using EmbeddedRaft.Benchmarks.Consensus;
using EmbeddedRaft.Benchmarks.Wal;

namespace EmbeddedRaft.Benchmarks.StoreLoad;

/// <summary>
/// The key-value cluster load generator (issue 17): three-member clusters of each system side by
/// side in one run, on the same disk, under the same workloads. For each system it starts a fresh
/// cluster, fills <c>--keys</c> keys with a 1 KiB value, then for every workload and every client
/// count runs closed-loop clients for <c>--seconds</c> after <c>--warmup-seconds</c>, compacting
/// the history after every row that wrote; then the open-loop rows (<c>--rates</c>). It prints a
/// markdown table as it goes, the targets of issue 17 at the end, and writes the rows as CSV
/// (<c>--csv</c>) and a latency-vs-throughput chart (<c>--chart</c>, SVG).
/// </summary>
/// <remarks>
/// <para>Systems: <c>store</c> (three EmbeddedRaft ReplicatedStores over an InProcessNetwork),
/// <c>etcd</c> (three etcd 3.4 processes from Debian, installed with apt-get when missing, driven by
/// this benchmark's gRPC client; then <c>etcdctl check perf</c> against them for reference),
/// <c>dotnext</c> (DotNext.Net.Cluster 6.12, puts only: it has no key-value store) and
/// <c>harness</c> (no system: every operation answered at once, so its rows are the load
/// generator's own cost per operation, see <see cref="HarnessOnlyCluster"/>).</para>
/// <para><c>dotnet run -c Release --project benchmarks/EmbeddedRaft.Benchmarks -- store-load
/// [--systems store,etcd,dotnext,harness] [--workloads put,linearizable-read,serializable-read,txn-compare-and-put,read-90-write-10]
/// [--clients 1,16,256,1024] [--rates 50000] [--open-loop-workload put] [--open-loop-systems store] [--max-outstanding 20000]
/// [--seconds 10] [--warmup-seconds 2] [--keys 100000] [--etcd-connections 4] [--etcdctl-check-perf s|m|l|xl|off]
/// [--store-snapshot-every-entries n] [--csv file] [--chart file.svg] [--dir directory] [--seed n]</c>;
/// <c>store-load chart RUN.csv CHART.svg TITLE</c> redraws the chart of a saved run from its CSV.</para>
/// </remarks>
internal static partial class StoreLoadGenerator
{
    [GeneratedRegex(@"^\s*\d+ / \d+\s+[\d.]+%")]
    private static partial Regex ProgressLine();

    public static async Task<int> RunAsync(string[] args)
    {
        // store-load chart RUN.csv CHART.svg "TITLE": redraws the chart of a saved run.
        if (args is ["chart", string csvPath, string chartPath, string title])
        {
            var rows = File.ReadAllLines(csvPath).Skip(1).Where(l => l.Length > 0).Select(StoreLoadResult.FromCsvRow).ToList();
            LatencyChart.Write(chartPath, rows, title);
            Console.WriteLine($"chart: {chartPath} ({rows.Count} rows)");
            return 0;
        }

        var settings = StoreLoadSettings.Parse(args);
        string root = settings.Directory is { } given ? Path.GetFullPath(given) : BenchmarkDirectory.Create("store-load");
        Directory.CreateDirectory(root);
        var data = new StoreLoadData(settings.Keys, settings.Seed);
        var results = new List<StoreLoadResult>();
        var notes = new List<string>();
        try
        {
            double rawP50 = DiskSyncProbe.MeasureP50Microseconds(root, 2000);
            Console.WriteLine(FormattableString.Invariant($"store-load {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, seed {settings.Seed}, {settings.Keys} keys x {StoreLoadData.ValueBytes} B, {settings.Seconds} s per row after {settings.WarmupSeconds} s warm-up"));
            Console.WriteLine(FormattableString.Invariant($"raw 4 KiB write + fdatasync p50: {rawP50:F0} us ({root})"));
            Console.WriteLine(FormattableString.Invariant($"{Environment.ProcessorCount} processors, server GC {System.Runtime.GCSettings.IsServerGC}, load average {LoadAverage()}"));
            Console.WriteLine();
            Console.WriteLine(StoreLoadResult.MarkdownHeader);
            foreach (string system in settings.Systems)
            {
                string directory = Path.Combine(root, system);
                Directory.CreateDirectory(directory);
                await using var cluster = await StartAsync(system, directory, settings, notes);
                if (cluster is null)
                {
                    continue;
                }

                await RunSystemAsync(cluster, settings with { Rates = settings.OpenLoopSystems.Contains(system) ? settings.Rates : [] }, data, results);
                if (cluster is EtcdCluster etcd && settings.EtcdctlCheckPerf != "off")
                {
                    notes.Add(await CheckPerfAsync(etcd, settings.EtcdctlCheckPerf));
                }
            }

            Console.WriteLine();
            foreach (string note in notes)
            {
                Console.WriteLine(note);
                Console.WriteLine();
            }

            PrintTargets(results);
            if (settings.CsvPath is { } csv)
            {
                File.WriteAllLines(csv, [StoreLoadResult.CsvHeader, .. results.Select(r => r.ToCsvRow())]);
                Console.WriteLine($"CSV: {csv}");
            }

            if (settings.ChartPath is { } chart && results.Count > 0)
            {
                LatencyChart.Write(chart, results, FormattableString.Invariant($"Three members, 1 KiB values, {settings.Keys:N0} keys: latency vs throughput ({DateTime.UtcNow:yyyy-MM-dd})"));
                Console.WriteLine($"chart: {chart}");
            }

            return 0;
        }
        finally
        {
            BenchmarkDirectory.Delete(root);
        }
    }

    // The machine's 1/5/15-minute load average (Linux), to record beside the figures.
    internal static string LoadAverage()
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

    private static async Task<IKvClusterUnderLoad?> StartAsync(string system, string directory, StoreLoadSettings settings, List<string> notes)
    {
        switch (system)
        {
            case "store":
                return await ReplicatedStoreCluster.StartAsync(directory, settings.StoreSnapshotEveryEntries, CancellationToken.None);
            case "etcd":
                if (!await EtcdCluster.EnsureInstalledAsync(Console.Out))
                {
                    notes.Add("etcd: not installed and apt-get could not install it: no etcd rows.");
                    return null;
                }

                return await EtcdCluster.StartAsync(directory, settings.EtcdConnectionsPerMember, CancellationToken.None);
            case "dotnext":
                return await DotNextPutCluster.StartAsync(directory, CancellationToken.None);
            case "harness":
                return new HarnessOnlyCluster();
            default:
                throw new ArgumentException($"Unknown system '{system}'.");
        }
    }

    private static async Task RunSystemAsync(IKvClusterUnderLoad cluster, StoreLoadSettings settings, StoreLoadData data, List<StoreLoadResult> results)
    {
        var workloads = settings.Workloads.Where(cluster.Supports).ToList();
        if (workloads.Any(w => w != StoreLoadWorkload.Put) || (settings.Rates.Count > 0 && settings.OpenLoopWorkload != StoreLoadWorkload.Put))
        {
            double preloadRate = await StoreLoadRunner.PreloadAsync(cluster, data, settings.PreloadInFlight);
            Console.WriteLine(FormattableString.Invariant($"<!-- {cluster.Name}: preloaded {settings.Keys} keys at {preloadRate:F0} puts/s ({settings.PreloadInFlight} in flight) -->"));
            await cluster.CompactAsync(CancellationToken.None);
        }

        int row = 0;
        foreach (var workload in workloads)
        {
            foreach (int clients in settings.Clients)
            {
                var result = await StoreLoadRunner.RunClosedLoopAsync(cluster, workload, clients, data, settings, unchecked(settings.Seed + (++row * 7919)));
                Report(result, results);
                if (workload.Writes())
                {
                    await cluster.CompactAsync(CancellationToken.None);
                }
            }
        }

        if (cluster.Supports(settings.OpenLoopWorkload))
        {
            foreach (double rate in settings.Rates)
            {
                var result = await StoreLoadRunner.RunOpenLoopAsync(cluster, settings.OpenLoopWorkload, rate, data, settings, unchecked(settings.Seed + (++row * 7919)));
                Report(result, results);
                if (settings.OpenLoopWorkload.Writes())
                {
                    await cluster.CompactAsync(CancellationToken.None);
                }
            }
        }
    }

    private static void Report(StoreLoadResult result, List<StoreLoadResult> results)
    {
        results.Add(result);
        Console.WriteLine(result.ToMarkdownRow());
        if (result.Collections is { } collections)
        {
            Console.WriteLine(FormattableString.Invariant($"<!-- this process allocated {result.AllocatedBytesPerOperation:F0} bytes per operation; GCs gen0/gen1/gen2: {collections} -->"));
        }

        if (result.JitMethods is { } jitMethods)
        {
            Console.WriteLine(FormattableString.Invariant($"<!-- JIT in the window: {jitMethods} methods compiled, {result.JitMicrosecondsPerOperation:F1} us of compiling per operation (wall time inside the JIT, so above its CPU on a busy machine; a row still warming up, not the system) -->"));
        }
        if (result.Failures > 0 && result.FirstFailure is { } failure)
        {
            Console.WriteLine($"<!-- first failure: {failure} -->");
        }
    }

    private static async Task<string> CheckPerfAsync(EtcdCluster etcd, string load)
    {
        string endpoints = string.Join(',', etcd.ClientUrls);
        string arguments = $"--endpoints={endpoints} check perf --load={load}";
        var (exitCode, output) = await EtcdCluster.RunAsync(EtcdCluster.EtcdctlPath, arguments, TimeSpan.FromMinutes(5));
        // Keep the verdict lines, not the progress bar it redraws with carriage returns.
        var lines = output.Split('\r', '\n').Where(l => l.Length > 0 && !ProgressLine().IsMatch(l));
        return $"etcdctl {arguments} (exit code {exitCode}; for reference, against the etcd cluster above):\n```\n{string.Join('\n', lines)}\n```";
    }

    /// <summary>Issue 17's targets, each from this run's rows: met or not, with the figures.</summary>
    private static void PrintTargets(List<StoreLoadResult> results)
    {
        static StoreLoadResult? Best(IEnumerable<StoreLoadResult> rows) => rows.Where(r => !r.IsOpenLoop).MaxBy(r => r.OperationsPerSecond);
        static string Rate(StoreLoadResult? row) => row is null ? "not run" : string.Create(CultureInfo.InvariantCulture, $"{row.OperationsPerSecond:N0}/s ({row.Concurrency} clients)");

        var store = results.Where(r => r.System.StartsWith("EmbeddedRaft", StringComparison.Ordinal)).ToList();
        var etcd = results.Where(r => r.System.StartsWith("etcd", StringComparison.Ordinal)).ToList();
        var dotnext = results.Where(r => r.System.StartsWith("DotNext", StringComparison.Ordinal)).ToList();
        var storePuts = Best(store.Where(r => r.Workload == StoreLoadWorkload.Put));
        var etcdPuts = Best(etcd.Where(r => r.Workload == StoreLoadWorkload.Put));
        var dotnextPuts = Best(dotnext.Where(r => r.Workload == StoreLoadWorkload.Put));
        var storeReads = Best(store.Where(r => r.Workload == StoreLoadWorkload.LinearizableRead));
        var open = store.Where(r => r.IsOpenLoop && r.Workload == StoreLoadWorkload.Put).OrderBy(r => Math.Abs(r.OfferedPerSecond!.Value - 50_000)).FirstOrDefault();

        Console.WriteLine("| target (issue 17) | measured in this run | verdict |");
        Console.WriteLine("|---|---|---|");
        Console.WriteLine($"| at least 100,000 durable replicated 1 KiB puts/s | {Rate(storePuts)} | {Verdict(storePuts?.OperationsPerSecond, 100_000)} |");
        Console.WriteLine(open is null
            ? "| p99 at most 10 ms at 50,000 puts/s | not run (open loop: --rates 50000) | n/a |"
            : string.Create(CultureInfo.InvariantCulture, $"| p99 at most 10 ms at 50,000 puts/s | offered {open.OfferedPerSecond:N0}/s, achieved {open.OperationsPerSecond:N0}/s, p99 {(double.IsNaN(open.P99Ms) ? "n/a (no operation due in the window completed: the backlog was full)" : open.P99Ms.ToString("F2", CultureInfo.InvariantCulture) + " ms")}, {open.Failures} failed, {open.NotIssued} not issued | {(open.P99Ms <= 10 && open.OperationsPerSecond >= 0.99 * open.OfferedPerSecond!.Value && open.Failures == 0 && open.NotIssued == 0 ? "met" : "**not met**")} |"));
        Console.WriteLine($"| at least 500,000 linearizable reads/s | {Rate(storeReads)} | {Verdict(storeReads?.OperationsPerSecond, 500_000)} |");
        Console.WriteLine($"| at least 25x etcd's put rate | store {Rate(storePuts)}, etcd {Rate(etcdPuts)} | {Ratio(storePuts, etcdPuts, 25)} |");
        Console.WriteLine($"| (reference) DotNext.Net.Cluster's put rate | store {Rate(storePuts)}, DotNext {Rate(dotnextPuts)} | {Ratio(storePuts, dotnextPuts, null)} |");

        // Side by side per client count, same workload: the ratios the docs quote.
        foreach (var workload in StoreLoadWorkloads.All)
        {
            var pairs = store.Where(r => r.Workload == workload && !r.IsOpenLoop)
                .Select(s => (Store: s, Etcd: etcd.FirstOrDefault(e => e.Workload == workload && !e.IsOpenLoop && e.Concurrency == s.Concurrency)))
                .Where(p => p.Etcd is not null)
                .ToList();
            if (pairs.Count > 0)
            {
                Console.WriteLine($"store / etcd, {workload.Name()}: " + string.Join(", ", pairs.Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Store.Concurrency} clients {p.Store.OperationsPerSecond / p.Etcd!.OperationsPerSecond:F1}x"))));
            }
        }
    }

    private static string Verdict(double? measured, double target) => measured is { } value
        ? value >= target ? "met" : string.Create(CultureInfo.InvariantCulture, $"**not met: {value / target:F2}x** of the target")
        : "not run";

    private static string Ratio(StoreLoadResult? ours, StoreLoadResult? theirs, double? target)
    {
        if (ours is null || theirs is null || theirs.OperationsPerSecond <= 0)
        {
            return "not run";
        }

        double ratio = ours.OperationsPerSecond / theirs.OperationsPerSecond;
        string text = ratio.ToString("F1", CultureInfo.InvariantCulture) + "x";
        return target is { } goal ? (ratio >= goal ? $"met: {text}" : $"**not met: {text}**") : text;
    }
}
