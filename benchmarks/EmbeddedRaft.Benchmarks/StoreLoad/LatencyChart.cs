using System.Globalization;
using System.Security;
using System.Text;

namespace EmbeddedRaft.Benchmarks.StoreLoad;

/// <summary>
/// Writes the latency-vs-throughput chart of a store-load run as a self-contained SVG image (no
/// plotting package): throughput on a logarithmic x axis, latency in milliseconds on a logarithmic
/// y axis; the p99 of each closed-loop row as a point labelled with its number of clients, joined
/// per system and workload (colour = workload, line style and marker = system), open-loop rows as
/// diamonds at their p99 (labelled with the offered rate). The p50s are in the table and CSV.
/// </summary>
internal static class LatencyChart
{
    private const double Width = 1100;
    private const double Height = 640;
    private const double Left = 80;
    private const double Right = 300;
    private const double Top = 50;
    private const double Bottom = 60;

    private static readonly string[] s_palette =
    [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
        "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939",
    ];

    public static void Write(string path, IReadOnlyList<StoreLoadResult> results, string title)
    {
        var plotted = results.Where(r => r.OperationsPerSecond > 0 && double.IsFinite(r.P99Ms) && r.P99Ms > 0).ToList();
        if (plotted.Count == 0)
        {
            throw new InvalidOperationException("No row completed an operation: nothing to chart.");
        }

        double xMin = Math.Floor(Math.Log10(plotted.Min(r => r.OperationsPerSecond)));
        double xMax = Math.Ceiling(Math.Log10(plotted.Max(r => r.OperationsPerSecond)));
        double yMin = Math.Floor(Math.Log10(plotted.Min(r => r.P99Ms)));
        double yMax = Math.Ceiling(Math.Log10(plotted.Max(r => r.P99Ms)));
        xMax = Math.Max(xMax, xMin + 1);
        yMax = Math.Max(yMax, yMin + 1);
        double plotWidth = Width - Left - Right;
        double plotHeight = Height - Top - Bottom;
        double X(double opsPerSecond) => Left + ((Math.Log10(opsPerSecond) - xMin) / (xMax - xMin) * plotWidth);
        double Y(double ms) => Top + plotHeight - ((Math.Log10(Math.Max(ms, Math.Pow(10, yMin))) - yMin) / (yMax - yMin) * plotHeight);

        var svg = new StringBuilder();
        svg.Append(Invariant($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{Height}\" viewBox=\"0 0 {Width} {Height}\" font-family=\"sans-serif\" font-size=\"12\">\n"));
        svg.Append(Invariant($"<rect width=\"{Width}\" height=\"{Height}\" fill=\"white\"/>\n"));
        svg.Append(Invariant($"<text x=\"{Width / 2}\" y=\"24\" text-anchor=\"middle\" font-size=\"16\">{Escape(title)}</text>\n"));

        // Decade grid lines with 2x and 5x minor lines.
        for (double decade = xMin; decade <= xMax; decade++)
        {
            foreach (double step in new[] { 1.0, 2.0, 5.0 })
            {
                double value = step * Math.Pow(10, decade);
                if (Math.Log10(value) > xMax + 1e-9)
                {
                    continue;
                }

                double x = X(value);
                svg.Append(Invariant($"<line x1=\"{x:F1}\" y1=\"{Top}\" x2=\"{x:F1}\" y2=\"{Top + plotHeight}\" stroke=\"{(step == 1 ? "#bbb" : "#eee")}\"/>\n"));
                svg.Append(Invariant($"<text x=\"{x:F1}\" y=\"{Top + plotHeight + 16}\" text-anchor=\"middle\" fill=\"#333\">{FormatCount(value)}</text>\n"));
            }
        }

        for (double decade = yMin; decade <= yMax; decade++)
        {
            foreach (double step in new[] { 1.0, 2.0, 5.0 })
            {
                double value = step * Math.Pow(10, decade);
                if (Math.Log10(value) > yMax + 1e-9)
                {
                    continue;
                }

                double y = Y(value);
                svg.Append(Invariant($"<line x1=\"{Left}\" y1=\"{y:F1}\" x2=\"{Left + plotWidth}\" y2=\"{y:F1}\" stroke=\"{(step == 1 ? "#bbb" : "#eee")}\"/>\n"));
                svg.Append(Invariant($"<text x=\"{Left - 6}\" y=\"{y + 4:F1}\" text-anchor=\"end\" fill=\"#333\">{value.ToString("0.###", CultureInfo.InvariantCulture)}</text>\n"));
            }
        }

        svg.Append(Invariant($"<rect x=\"{Left}\" y=\"{Top}\" width=\"{plotWidth}\" height=\"{plotHeight}\" fill=\"none\" stroke=\"#333\"/>\n"));
        svg.Append(Invariant($"<text x=\"{Left + (plotWidth / 2)}\" y=\"{Height - 18}\" text-anchor=\"middle\">throughput (operations/s, log scale)</text>\n"));
        svg.Append(Invariant($"<text transform=\"translate(22 {Top + (plotHeight / 2)}) rotate(-90)\" text-anchor=\"middle\">p99 latency (ms, log scale)</text>\n"));

        // Colour = workload, line style and marker = system, so one workload's systems sit side by side in one colour.
        var systems = plotted.Select(r => r.System).Distinct().ToList();
        string[] dashes = ["", "7,4", "2,3", "10,3,2,3"];
        foreach (var series in plotted.GroupBy(r => (r.System, r.Workload)))
        {
            string colour = s_palette[(int)series.Key.Workload % s_palette.Length];
            int system = systems.IndexOf(series.Key.System);
            string dash = dashes[system % dashes.Length];
            var closed = series.Where(r => !r.IsOpenLoop).OrderBy(r => r.Concurrency).ToList();
            if (closed.Count > 0)
            {
                svg.Append(Invariant($"<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{(dash.Length > 0 ? $" stroke-dasharray=\"{dash}\"" : "")} points=\"{string.Join(' ', closed.Select(r => Invariant($"{X(r.OperationsPerSecond):F1},{Y(r.P99Ms):F1}")))}\"/>\n"));
                foreach (var row in closed)
                {
                    svg.Append(Marker(system, X(row.OperationsPerSecond), Y(row.P99Ms), colour));
                    svg.Append(Invariant($"<text x=\"{X(row.OperationsPerSecond) + 5:F1}\" y=\"{Y(row.P99Ms) - 5:F1}\" font-size=\"10\" fill=\"{colour}\">{row.Concurrency}</text>\n"));
                }
            }

            foreach (var row in series.Where(r => r.IsOpenLoop))
            {
                double x = X(row.OperationsPerSecond);
                double y = Y(row.P99Ms);
                svg.Append(Invariant($"<path d=\"M {x:F1} {y - 7:F1} L {x + 7:F1} {y:F1} L {x:F1} {y + 7:F1} L {x - 7:F1} {y:F1} Z\" fill=\"white\" stroke=\"{colour}\" stroke-width=\"2\"/>\n"));
                svg.Append(Invariant($"<text x=\"{x + 9:F1}\" y=\"{y + 4:F1}\" font-size=\"10\" fill=\"{colour}\">{Escape(Shorten(row.System))} open loop, {FormatCount(row.OfferedPerSecond!.Value)}/s offered</text>\n"));
            }
        }

        double legendX = Width - Right + 16;
        double legendY = Top + 10;
        svg.Append(Invariant($"<text x=\"{legendX}\" y=\"{legendY}\" font-weight=\"bold\">workload (colour)</text>\n"));
        foreach (var workload in plotted.Select(r => r.Workload).Distinct().OrderBy(w => w))
        {
            legendY += 20;
            string colour = s_palette[(int)workload % s_palette.Length];
            svg.Append(Invariant($"<line x1=\"{legendX}\" y1=\"{legendY - 4}\" x2=\"{legendX + 28}\" y2=\"{legendY - 4}\" stroke=\"{colour}\" stroke-width=\"3\"/>\n"));
            svg.Append(Invariant($"<text x=\"{legendX + 36}\" y=\"{legendY}\">{workload.Name()}</text>\n"));
        }

        legendY += 34;
        svg.Append(Invariant($"<text x=\"{legendX}\" y=\"{legendY}\" font-weight=\"bold\">system (line and marker)</text>\n"));
        for (int system = 0; system < systems.Count; system++)
        {
            legendY += 20;
            string dash = dashes[system % dashes.Length];
            svg.Append(Invariant($"<line x1=\"{legendX}\" y1=\"{legendY - 4}\" x2=\"{legendX + 28}\" y2=\"{legendY - 4}\" stroke=\"#333\" stroke-width=\"2\"{(dash.Length > 0 ? $" stroke-dasharray=\"{dash}\"" : "")}/>\n"));
            svg.Append(Marker(system, legendX + 14, legendY - 4, "#333"));
            svg.Append(Invariant($"<text x=\"{legendX + 36}\" y=\"{legendY}\">{Escape(Shorten(systems[system]))}</text>\n"));
        }

        legendY += 34;
        svg.Append(Invariant($"<text x=\"{legendX}\" y=\"{legendY}\" font-size=\"11\" fill=\"#333\">numbers: closed-loop clients</text>\n"));
        svg.Append(Invariant($"<text x=\"{legendX}\" y=\"{legendY + 16}\" font-size=\"11\" fill=\"#333\">diamonds: open-loop rows at their p99</text>\n"));

        svg.Append("</svg>\n");
        string? directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null)
        {
            Directory.CreateDirectory(directory);
        }

        File.WriteAllText(path, svg.ToString());
    }

    private static string Shorten(string system) => system
        .Replace("EmbeddedRaft ", "", StringComparison.Ordinal)
        .Replace(".Net.Cluster", "", StringComparison.Ordinal);

    private static string Marker(int system, double x, double y, string colour) => (system % 3) switch
    {
        0 => Invariant($"<circle cx=\"{x:F1}\" cy=\"{y:F1}\" r=\"3.5\" fill=\"{colour}\"/>\n"),
        1 => Invariant($"<rect x=\"{x - 3.5:F1}\" y=\"{y - 3.5:F1}\" width=\"7\" height=\"7\" fill=\"{colour}\"/>\n"),
        _ => Invariant($"<path d=\"M {x:F1} {y - 4.5:F1} L {x + 4.5:F1} {y + 3.5:F1} L {x - 4.5:F1} {y + 3.5:F1} Z\" fill=\"{colour}\"/>\n"),
    };

    private static string FormatCount(double value) => value switch
    {
        >= 1_000_000 => (value / 1_000_000).ToString("0.#", CultureInfo.InvariantCulture) + "M",
        >= 1_000 => (value / 1_000).ToString("0.#", CultureInfo.InvariantCulture) + "k",
        _ => value.ToString("0.###", CultureInfo.InvariantCulture),
    };

    private static string Escape(string text) => SecurityElement.Escape(text) ?? "";

    private static string Invariant(FormattableString text) => FormattableString.Invariant(text);
}
