using System.Globalization;

namespace EmbeddedRaft.EtcdRecorder;

/// <summary>
/// The recorder's command line. Either <see cref="EtcdBinary"/> (the recorder starts a fresh etcd
/// per seed, each on an empty data directory, so every recording starts at revision 1) or
/// <see cref="ConnectEndpoint"/> (an etcd someone else started; it must be empty and only one seed
/// can be recorded, because a store's revision never goes back).
/// </summary>
internal sealed record RecorderOptions
{
    public const int DefaultOperationsPerSeed = 800;

    public IReadOnlyList<int> Seeds { get; init; } = [1, 2, 3, 4];

    public int OperationsPerSeed { get; init; } = DefaultOperationsPerSeed;

    public string OutputDirectory { get; init; } = Path.Combine("tests", "Mvcc.Tests", "EtcdCompat", "testdata");

    public string EtcdBinary { get; init; } = "etcd";

    public int ClientPort { get; init; } = 2379;

    public int PeerPort { get; init; } = 2380;

    public Uri? ConnectEndpoint { get; init; }

    /// <summary>Record the lease sequence (<see cref="LeaseOperationGenerator"/>) to lease-seed-N.jsonl instead of the KV one.</summary>
    public bool Leases { get; init; }

    public const string Usage = """
        EmbeddedRaft.EtcdRecorder: records a real etcd's responses to seeded operation sequences.

          --seeds 1,2,3,4        seeds to record, one file seed-N.jsonl each (default 1,2,3,4)
          --ops N                operations per seed (default 800)
          --out DIR              output directory (default tests/Mvcc.Tests/EtcdCompat/testdata)
          --etcd PATH            etcd binary to start, fresh data directory per seed (default: etcd on PATH)
          --client-port N        client port of the started etcd (default 2379)
          --peer-port N          peer port of the started etcd (default 2380)
          --connect URL          use an already running, empty etcd instead (one seed only)
          --leases               record the lease sequence (grants, revokes, time-to-live, lease
                                 lists, puts with leases) to lease-seed-N.jsonl
        """;

    /// <summary>Parses <paramref name="args"/>; throws <see cref="ArgumentException"/> naming the bad argument.</summary>
    public static RecorderOptions Parse(IReadOnlyList<string> args)
    {
        var options = new RecorderOptions();
        for (int i = 0; i < args.Count; i++)
        {
            string name = args[i];
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{name} needs a value.");
            options = name switch
            {
                "--seeds" => options with { Seeds = Value().Split(',').Select(ParseInt).ToList() },
                "--ops" => options with { OperationsPerSeed = ParsePositive(name, Value()) },
                "--out" => options with { OutputDirectory = Value() },
                "--etcd" => options with { EtcdBinary = Value() },
                "--client-port" => options with { ClientPort = ParsePositive(name, Value()) },
                "--peer-port" => options with { PeerPort = ParsePositive(name, Value()) },
                "--connect" => options with { ConnectEndpoint = new Uri(Value()) },
                "--leases" => options with { Leases = true },
                _ => throw new ArgumentException($"Unknown argument '{name}'."),
            };
        }

        if (options.ConnectEndpoint is not null && options.Seeds.Count != 1)
        {
            throw new ArgumentException("--connect records exactly one seed: an etcd's revision cannot be reset between seeds.");
        }

        return options;
    }

    private static int ParseInt(string text) => int.Parse(text, NumberStyles.Integer, CultureInfo.InvariantCulture);

    private static int ParsePositive(string name, string text)
    {
        int value = ParseInt(text);
        return value > 0 ? value : throw new ArgumentException($"{name} must be positive, was {value}.");
    }
}
