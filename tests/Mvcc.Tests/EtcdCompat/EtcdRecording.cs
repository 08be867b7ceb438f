using System.Text.Json.Nodes;

namespace EmbeddedRaft.Mvcc.Tests.EtcdCompat;

/// <summary>
/// A recording made by tools/EtcdRecorder (format in docs/etcd-compat.md): the description line,
/// then every request with etcd's answer, in order.
/// </summary>
internal sealed class EtcdRecording
{
    public const string Format = "etcd-kv-recording/1";

    private EtcdRecording(string name, string etcdVersion, int maxTxnOps, int maxRequestBytes, IReadOnlyList<RecordedOperation> operations)
    {
        Name = name;
        EtcdVersion = etcdVersion;
        MaxTxnOps = maxTxnOps;
        MaxRequestBytes = maxRequestBytes;
        Operations = operations;
    }

    /// <summary>etcd's --max-txn-ops during the recording.</summary>
    public int MaxTxnOps { get; }

    /// <summary>etcd's --max-request-bytes during the recording.</summary>
    public int MaxRequestBytes { get; }

    public string Name { get; }

    public string EtcdVersion { get; }

    public IReadOnlyList<RecordedOperation> Operations { get; }

    /// <summary>Names a directory of recordings to replay instead of the committed testdata (a soak:
    /// record many more seeds with tools/EtcdRecorder --out DIR, then run the tests with this set).</summary>
    public const string DirectoryVariable = "ETCD_COMPAT_TESTDATA";

    /// <summary>The recordings to replay: <see cref="DirectoryVariable"/> when set, otherwise the
    /// testdata directory in the source tree, where the recorder writes them, found by walking up from
    /// the test's output directory.</summary>
    public static string TestdataDirectory
    {
        get
        {
            if (Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 } chosen)
            {
                return Directory.Exists(chosen) ? chosen : throw new DirectoryNotFoundException($"{DirectoryVariable}={chosen} does not exist.");
            }

            for (DirectoryInfo? directory = new(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
            {
                string candidate = Path.Combine(directory.FullName, "tests", "Mvcc.Tests", "EtcdCompat", "testdata");
                if (Directory.Exists(candidate))
                {
                    return candidate;
                }
            }

            throw new DirectoryNotFoundException($"No tests/Mvcc.Tests/EtcdCompat/testdata above {AppContext.BaseDirectory}.");
        }
    }

    /// <summary>The names of the recordings (seed-N.jsonl), for the test's cases.</summary>
    public static IEnumerable<string> Names() =>
        Directory.EnumerateFiles(TestdataDirectory, "*.jsonl").Select(Path.GetFileName).Order(StringComparer.Ordinal)!;

    public static EtcdRecording Load(string name)
    {
        string[] lines = File.ReadAllLines(Path.Combine(TestdataDirectory, name));
        JsonObject description = JsonNode.Parse(lines[0])!.AsObject();
        string format = (string)description["format"]!;
        if (format != Format)
        {
            throw new InvalidDataException($"{name} is in format '{format}', this test reads '{Format}'.");
        }

        var operations = new List<RecordedOperation>(lines.Length - 1);
        foreach (string line in lines.Skip(1))
        {
            JsonObject record = JsonNode.Parse(line)!.AsObject();
            var error = record["error"] as JsonObject;
            operations.Add(new RecordedOperation(
                (int)record["i"]!,
                (string)record["op"]!,
                record["request"]!.AsObject(),
                record["response"] as JsonObject,
                error is null ? 0 : (int)error["code"]!,
                error is null ? null : (string)error["message"]!));
        }

        int declared = (int)description["operations"]!;
        if (operations.Count != declared)
        {
            throw new InvalidDataException($"{name} declares {declared} operations and holds {operations.Count}: truncated?");
        }

        return new EtcdRecording(name, (string)description["etcd_version"]!, (int)description["max_txn_ops"]!, (int)description["max_request_bytes"]!, operations);
    }
}
