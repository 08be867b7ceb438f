using System.Globalization;

namespace EmbeddedRaft.Benchmarks.StoreLoad;

/// <summary>The store-load command line (every option has a default; see <see cref="StoreLoadGenerator"/>).</summary>
internal sealed record StoreLoadSettings
{
    public IReadOnlyList<string> Systems { get; init; } = ["store", "etcd", "dotnext"];

    public IReadOnlyList<StoreLoadWorkload> Workloads { get; init; } = StoreLoadWorkloads.All;

    public IReadOnlyList<int> Clients { get; init; } = [1, 16, 256, 1024];

    /// <summary>Open-loop rates (operations/s) run after the closed-loop rows; empty = none.</summary>
    public IReadOnlyList<double> Rates { get; init; } = [];

    public StoreLoadWorkload OpenLoopWorkload { get; init; } = StoreLoadWorkload.Put;

    /// <summary>The systems the open-loop rows run on (the target is the store's; at 50,000/s etcd only rejects, "too many requests").</summary>
    public IReadOnlyList<string> OpenLoopSystems { get; init; } = ["store"];

    /// <summary>Open loop: at most this many operations wait at once; beyond it the due ones are late (and their latency says so).</summary>
    public int MaxOutstanding { get; init; } = 20_000;

    public double Seconds { get; init; } = 10;

    public double WarmupSeconds { get; init; } = 2;

    public int Keys { get; init; } = 100_000;

    public int PreloadInFlight { get; init; } = 256;

    public int EtcdConnectionsPerMember { get; init; } = 4;

    /// <summary>etcdctl check perf's --load (s, m, l, xl) run against the etcd cluster after its rows; "off" skips it.</summary>
    public string EtcdctlCheckPerf { get; init; } = "s";

    /// <summary>The store's Raft snapshot policy (<c>RaftNodeOptions.SnapshotEveryEntries</c>); null = the store's default.</summary>
    public ulong? StoreSnapshotEveryEntries { get; init; }

    public string? CsvPath { get; init; }

    public string? ChartPath { get; init; }

    /// <summary>Where the members' data directories go (default: a fresh directory under the temp path, removed at the end).</summary>
    public string? Directory { get; init; }

    public int Seed { get; init; } = Environment.TickCount & 0x7fffffff;

    public static StoreLoadSettings Parse(string[] args)
    {
        var settings = new StoreLoadSettings();
        for (int i = 0; i < args.Length; i += 2)
        {
            if (i + 1 >= args.Length)
            {
                throw new CommandLineException($"{args[i]} needs a value.");
            }

            string value = args[i + 1];
            settings = args[i] switch
            {
                "--systems" => settings with { Systems = value.Split(',').Select(CheckSystem).ToArray() },
                "--workloads" => settings with { Workloads = value.Split(',').Select(Workload).ToArray() },
                "--clients" => settings with { Clients = value.Split(',').Select(v => Positive("--clients", v)).ToArray() },
                "--rates" => settings with { Rates = value.Length == 0 ? [] : CommandLine.Numbers<double>("--rates", value) },
                "--open-loop-workload" => settings with { OpenLoopWorkload = Workload(value) },
                "--open-loop-systems" => settings with { OpenLoopSystems = value.Split(',').Select(CheckSystem).ToArray() },
                "--max-outstanding" => settings with { MaxOutstanding = Positive("--max-outstanding", value) },
                "--seconds" => settings with { Seconds = CommandLine.Number<double>("--seconds", value) },
                "--warmup-seconds" => settings with { WarmupSeconds = CommandLine.Number<double>("--warmup-seconds", value) },
                "--keys" => settings with { Keys = Positive("--keys", value) },
                "--preload-in-flight" => settings with { PreloadInFlight = Positive("--preload-in-flight", value) },
                "--etcd-connections" => settings with { EtcdConnectionsPerMember = Positive("--etcd-connections", value) },
                "--etcdctl-check-perf" => value is "s" or "m" or "l" or "xl" or "off"
                    ? settings with { EtcdctlCheckPerf = value }
                    : throw new CommandLineException($"--etcdctl-check-perf takes s, m, l, xl or off, not '{value}'."),
                "--store-snapshot-every-entries" => settings with { StoreSnapshotEveryEntries = CommandLine.Number<ulong>("--store-snapshot-every-entries", value) },
                "--csv" => settings with { CsvPath = value },
                "--chart" => settings with { ChartPath = value },
                "--dir" => settings with { Directory = value },
                "--seed" => settings with { Seed = Positive("--seed", value) },
                _ => throw new CommandLineException($"Unknown option '{args[i]}'."),
            };
        }

        return settings;
    }

    private static string CheckSystem(string system) => system is "store" or "etcd" or "dotnext" or "harness"
        ? system
        : throw new CommandLineException($"Unknown system '{system}': store, etcd, dotnext or harness (no system: the load generator's own cost).");

    private static StoreLoadWorkload Workload(string name) =>
        StoreLoadWorkloads.TryParse(name, out var found) ? found : throw new CommandLineException(StoreLoadWorkloads.UnknownWorkload(name));

    private static int Positive(string option, string value) => CommandLine.Number<int>(option, value) is var parsed && parsed > 0
        ? parsed
        : throw new CommandLineException($"{option} takes a positive whole number, not '{value}'.");
}
