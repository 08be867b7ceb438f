using System.Diagnostics;
using System.Globalization;

namespace EmbeddedRaft.Benchmarks.Transport;

/// <summary>
/// <c>tcp-cpu [--rounds 30] [--rows 128,128tls,1024,1024tls]</c>: the four rows (or those named) of <see cref="TcpTransportThroughputBenchmarks"/>
/// (same set-up, same invocations of 20,000 messages), each invocation timed by the wall clock AND
/// by the process's CPU time (user + system, every thread: sender, pump, receiver, the kernel's
/// loopback work done in their system calls, GC). On a shared, loaded machine the wall time of an
/// invocation mostly measures the other tenants; CPU per message is what the transport itself
/// costs. Transport and raw copy invocations alternate, so both see the same machine. Prints
/// medians per message and the ratios raw / transport (1.0 = as cheap as the raw copy).
/// </summary>
internal static class TcpTransportCpuProbe
{
    private const int Messages = 20_000;

    public static int Run(string[] args)
    {
        int rounds = 30;
        string[] rows = ["128", "128tls", "1024", "1024tls"];
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--rounds":
                    rounds = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
                    break;
                case "--rows":
                    rows = args[i + 1].Split(',');
                    break;
                default:
                    throw new ArgumentException($"Unknown option {args[i]}: --rounds N, --rows 128,128tls,1024,1024tls.");
            }
        }

        Console.WriteLine(FormattableString.Invariant($"{Environment.ProcessorCount} processors, load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]}, {rounds} rounds of {Messages} messages per row and side"));
        Console.WriteLine("| entry | TLS | transport wall ns/msg | raw wall ns/msg | raw / transport (wall) | transport CPU ns/msg | raw CPU ns/msg | raw / transport (CPU) | transport allocated B/msg | gen0 GCs per transport invocation |");
        Console.WriteLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (int entry in new[] { 128, 1024 })
        {
            foreach (bool tls in new[] { false, true })
            {
                if (!rows.Contains(FormattableString.Invariant($"{entry}{(tls ? "tls" : string.Empty)}")))
                {
                    continue;
                }

                var bench = new TcpTransportThroughputBenchmarks { EntryBytes = entry, Tls = tls };
                bench.Setup();
                try
                {
                    for (int i = 0; i < 5; i++)
                    {
                        bench.TcpTransportSend();
                        bench.RawSocketCopy();
                    }

                    var transport = new List<(double Wall, double Cpu)>();
                    var raw = new List<(double Wall, double Cpu)>();
                    long allocated = 0;
                    int gen0 = 0;
                    for (int i = 0; i < rounds; i++)
                    {
                        long allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
                        int gen0Before = GC.CollectionCount(0);
                        transport.Add(Measure(bench.TcpTransportSend));
                        allocated += GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
                        gen0 += GC.CollectionCount(0) - gen0Before;
                        raw.Add(Measure(bench.RawSocketCopy));
                    }

                    double tw = Median(transport.Select(t => t.Wall)), rw = Median(raw.Select(t => t.Wall));
                    double tc = Median(transport.Select(t => t.Cpu)), rc = Median(raw.Select(t => t.Cpu));
                    Console.WriteLine(FormattableString.Invariant($"| {entry} B | {(tls ? "yes" : "no")} | {tw:F0} | {rw:F0} | {rw / tw:F2}x | {tc:F0} | {rc:F0} | {rc / tc:F2}x | {(double)allocated / rounds / Messages:F0} | {(double)gen0 / rounds:F1} |"));
                }
                finally
                {
                    bench.Cleanup();
                }
            }
        }

        return 0;
    }

    private static (double Wall, double Cpu) Measure(Action invocation)
    {
        using var process = Process.GetCurrentProcess();
        var cpuBefore = process.TotalProcessorTime;
        long start = Stopwatch.GetTimestamp();
        invocation();
        var wall = Stopwatch.GetElapsedTime(start);
        process.Refresh();
        var cpu = process.TotalProcessorTime - cpuBefore;
        return (wall.TotalNanoseconds / Messages, cpu.TotalNanoseconds / Messages);
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
