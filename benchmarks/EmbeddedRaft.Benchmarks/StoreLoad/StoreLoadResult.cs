using System.Globalization;

namespace EmbeddedRaft.Benchmarks.StoreLoad;

/// <summary>
/// One row of the store-load report: a system running a workload, closed-loop at a concurrency or
/// open-loop at an offered rate, over the measured window.
/// </summary>
/// <param name="OfferedPerSecond">The open-loop rate asked for; null for closed-loop rows.</param>
/// <param name="NotIssued">Open loop: operations due in the window that the generator never issued because <c>--max-outstanding</c> were already waiting.</param>
/// <param name="CpuMicrosecondsPerOperation">CPU time of this process plus the system's own processes (etcd) per completed operation.</param>
internal sealed record StoreLoadResult(
    string System,
    StoreLoadWorkload Workload,
    int Concurrency,
    double? OfferedPerSecond,
    double OperationsPerSecond,
    double P50Ms,
    double P99Ms,
    double P999Ms,
    long Operations,
    long Failures,
    long NotIssued,
    string? FirstFailure,
    double CpuMicrosecondsPerOperation,
    string LoadAverage)
{
    public bool IsOpenLoop => OfferedPerSecond is not null;

    /// <summary>Bytes this process allocated (all threads; etcd's processes not counted) per completed operation in the window; NaN when not measured.</summary>
    public double AllocatedBytesPerOperation { get; init; } = double.NaN;

    /// <summary>Garbage collections of this process in the window, as "gen0/gen1/gen2" (null when not measured).</summary>
    public string? Collections { get; init; }

    /// <summary>Methods the JIT compiled in the window (all tiers; the runtime's own count); null when not measured.</summary>
    public long? JitMethods { get; init; }

    /// <summary>The JIT's compiling time in the window per completed operation, µs: wall time inside the JIT (the runtime's count), so above the JIT's CPU when the machine is busy; NaN when not measured.</summary>
    public double JitMicrosecondsPerOperation { get; init; } = double.NaN;

    public const string MarkdownHeader =
        "| system | workload | clients (closed) / offered ops/s (open) | ops/s | p50 ms | p99 ms | p999 ms | failed | CPU us per op | load average |\n" +
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|";

    public const string CsvHeader =
        "system,workload,mode,clients,offered_ops_per_s,ops_per_s,p50_ms,p99_ms,p999_ms,operations,failed,not_issued,cpu_us_per_op,load_average,first_failure";

    public string ToMarkdownRow() => string.Create(
        CultureInfo.InvariantCulture,
        $"| {System} | {Workload.Name()} | {(OfferedPerSecond is { } offered ? $"open {offered:F0}" : Concurrency.ToString(CultureInfo.InvariantCulture))} | {OperationsPerSecond:F0} | {Ms(P50Ms)} | {Ms(P99Ms)} | {Ms(P999Ms)} | {Failures}{(NotIssued > 0 ? $" (+{NotIssued} not issued)" : "")} | {CpuMicrosecondsPerOperation:F1} | {LoadAverage} |");

    public string ToCsvRow() => string.Create(
        CultureInfo.InvariantCulture,
        $"{Csv(System)},{Workload.Name()},{(IsOpenLoop ? "open" : "closed")},{Concurrency},{OfferedPerSecond?.ToString("F0", CultureInfo.InvariantCulture) ?? ""},{OperationsPerSecond:F1},{P50Ms:F3},{P99Ms:F3},{P999Ms:F3},{Operations},{Failures},{NotIssued},{CpuMicrosecondsPerOperation:F2},{Csv(LoadAverage)},{Csv(FirstFailure ?? "")}");

    /// <summary>Reads back a row written by <see cref="ToCsvRow"/> (to redraw a chart from a saved run).</summary>
    public static StoreLoadResult FromCsvRow(string line)
    {
        var fields = new List<string>();
        var field = new System.Text.StringBuilder();
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < line.Length && line[i + 1] == '"')
                {
                    field.Append('"');
                    i++;
                }
                else if (c == '"')
                {
                    quoted = false;
                }
                else
                {
                    field.Append(c);
                }
            }
            else if (c == '"')
            {
                quoted = true;
            }
            else if (c == ',')
            {
                fields.Add(field.ToString());
                field.Clear();
            }
            else
            {
                field.Append(c);
            }
        }

        fields.Add(field.ToString());
        if (fields.Count != 15)
        {
            throw new FormatException($"A store-load CSV row has 15 fields, this one {fields.Count}: {line}");
        }

        static double D(string text) => text.Length == 0 ? double.NaN : double.Parse(text, CultureInfo.InvariantCulture);
        return new StoreLoadResult(
            fields[0],
            StoreLoadWorkloads.Parse(fields[1]),
            int.Parse(fields[3], CultureInfo.InvariantCulture),
            fields[2] == "open" ? D(fields[4]) : null,
            D(fields[5]),
            D(fields[6]),
            D(fields[7]),
            D(fields[8]),
            long.Parse(fields[9], CultureInfo.InvariantCulture),
            long.Parse(fields[10], CultureInfo.InvariantCulture),
            long.Parse(fields[11], CultureInfo.InvariantCulture),
            fields[14].Length == 0 ? null : fields[14],
            D(fields[12]),
            fields[13]);
    }

    // No operation due in the window completed (open loop, all still waiting): no percentile.
    private static string Ms(double milliseconds) =>
        double.IsNaN(milliseconds) ? "n/a" : milliseconds.ToString("F2", CultureInfo.InvariantCulture);

    private static string Csv(string text) => text.Contains(',') || text.Contains('"') || text.Contains('\n')
        ? $"\"{text.Replace("\"", "\"\"", StringComparison.Ordinal).Replace('\n', ' ')}\""
        : text;
}
