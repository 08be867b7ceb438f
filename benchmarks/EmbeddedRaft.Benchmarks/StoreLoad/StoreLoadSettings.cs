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
                throw new ArgumentException($"Option {args[i]} needs a value.");
            }

            string value = args[i + 1];
            settings = args[i] switch
            {
                "--systems" => settings with { Systems = value.Split(',').Select(CheckSystem).ToArray() },
                "--workloads" => settings with { Workloads = value.Split(',').Select(StoreLoadWorkloads.Parse).ToArray() },
                "--clients" => settings with { Clients = value.Split(',').Select(Int).ToArray() },
                "--rates" => settings with { Rates = value.Length == 0 ? [] : value.Split(',').Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray() },
                "--open-loop-workload" => settings with { OpenLoopWorkload = StoreLoadWorkloads.Parse(value) },
                "--open-loop-systems" => settings with { OpenLoopSystems = value.Split(',').Select(CheckSystem).ToArray() },
                "--max-outstanding" => settings with { MaxOutstanding = Int(value) },
                "--seconds" => settings with { Seconds = double.Parse(value, CultureInfo.InvariantCulture) },
                "--warmup-seconds" => settings with { WarmupSeconds = double.Parse(value, CultureInfo.InvariantCulture) },
                "--keys" => settings with { Keys = Int(value) },
                "--preload-in-flight" => settings with { PreloadInFlight = Int(value) },
                "--etcd-connections" => settings with { EtcdConnectionsPerMember = Int(value) },
                "--etcdctl-check-perf" => value is "s" or "m" or "l" or "xl" or "off"
                    ? settings with { EtcdctlCheckPerf = value }
                    : throw new ArgumentException($"--etcdctl-check-perf takes s, m, l, xl or off, not '{value}'."),
                "--store-snapshot-every-entries" => settings with { StoreSnapshotEveryEntries = ulong.Parse(value, CultureInfo.InvariantCulture) },
                "--csv" => settings with { CsvPath = value },
                "--chart" => settings with { ChartPath = value },
                "--dir" => settings with { Directory = value },
                "--seed" => settings with { Seed = Int(value) },
                _ => throw new ArgumentException($"Unknown option {args[i]}."),
            };
        }

        return settings;
    }

    private static string CheckSystem(string system) => system is "store" or "etcd" or "dotnext" or "harness"
        ? system
        : throw new ArgumentException($"Unknown system '{system}': store, etcd, dotnext or harness (no system: the load generator's own cost).");

    private static int Int(string value) => int.Parse(value, CultureInfo.InvariantCulture) is var parsed && parsed > 0
        ? parsed
        : throw new ArgumentException($"Expected a positive number, not '{value}'.");
}
