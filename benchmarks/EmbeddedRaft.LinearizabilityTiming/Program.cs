using System.Diagnostics;
using System.Globalization;
using EmbeddedRaft.Simulation.Tests.Linearizability;
using EmbeddedRaft.TestSupport.Linearizability;

namespace EmbeddedRaft.LinearizabilityTiming;

/// <summary>
/// Times <see cref="LinearizabilityChecker"/> on every Jepsen etcd history of a folder:
/// <c>dotnet run -c Release --project benchmarks/EmbeddedRaft.LinearizabilityTiming -- [folder] [runs]</c>
/// (default folder tests/Simulation.Tests/Jepsen/etcd, 7 runs). Each history is checked once to warm
/// up and then <c>runs</c> times; the median wall time per history is reported, with its steps and
/// verdict, then the slowest and the sum of the medians. A measurement, not a test: it asserts nothing
/// but exits non-zero when a verdict disagrees with verdicts.tsv.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        string folder = args.Length > 0 ? args[0] : Path.Combine("tests", "Simulation.Tests", "Jepsen", "etcd");
        int runs = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 7;
        var verdicts = File.ReadLines(Path.Combine(folder, "verdicts.tsv")).Skip(1).Where(line => line.Length > 0)
            .Select(line => line.Split('\t')).ToDictionary(fields => fields[0], fields => bool.Parse(fields[1]));

        var rows = new List<(string File, int Operations, long Steps, LinearizabilityVerdict Verdict, double MedianMs)>();
        int wrong = 0;
        foreach ((string file, bool expected) in verdicts.OrderBy(pair => pair.Key, StringComparer.Ordinal))
        {
            JepsenHistory history = JepsenEtcdLog.Parse(File.ReadAllText(Path.Combine(folder, file)));
            LinearizabilityResult<RegisterInput, RegisterOutput> result = LinearizabilityChecker.Check(RegisterModel.Instance, history.Operations);
            var times = new double[runs];
            for (int run = 0; run < runs; run++)
            {
                long start = Stopwatch.GetTimestamp();
                result = LinearizabilityChecker.Check(RegisterModel.Instance, history.Operations);
                times[run] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }

            Array.Sort(times);
            bool agrees = result.Verdict == (expected ? LinearizabilityVerdict.Linearizable : LinearizabilityVerdict.NotLinearizable);
            wrong += agrees ? 0 : 1;
            rows.Add((file, history.Operations.Count, result.Steps, result.Verdict, times[runs / 2]));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{file}\t{history.Operations.Count} ops\t{result.Steps,9} steps\t{result.Verdict,-15}\t{times[runs / 2],9:0.000} ms{(agrees ? "" : "\tDISAGREES with verdicts.tsv")}"));
        }

        var slowest = rows.MaxBy(row => row.MedianMs);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{rows.Count} histories, {runs} runs each (median): total {rows.Sum(row => row.MedianMs):0.0} ms, slowest {slowest.File} {slowest.MedianMs:0.0} ms ({slowest.Steps} steps), median history {rows.Select(row => row.MedianMs).Order().ElementAt(rows.Count / 2):0.00} ms; {wrong} verdicts disagree"));
        return wrong == 0 ? 0 : 1;
    }
}
