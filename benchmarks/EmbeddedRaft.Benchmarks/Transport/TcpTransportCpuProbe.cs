using System.Diagnostics;
using System.Globalization;

namespace EmbeddedRaft.Benchmarks.Transport;

/// <summary>
/// <c>tcp-cpu [--rounds 30] [--rows 128,128tls,1024,1024tls] [--entries 1,8] [--warmup-rounds N]</c>: the four rows (or those named) of <see cref="TcpTransportThroughputBenchmarks"/>
/// (same set-up, same invocations of 20,000 messages), each invocation timed by the wall clock AND
/// by the process's CPU time (user + system, every thread: sender, pump, receiver, the kernel's
/// loopback work done in their system calls, GC). On a shared, loaded machine the wall time of an
/// invocation mostly measures the other tenants; CPU per message is what the transport itself
/// costs. Transport and raw copy invocations alternate, so both see the same machine. Prints
/// medians per message and the ratios raw / transport (1.0 = as cheap as the raw copy).
/// <c>--entries</c> runs each row once per value: Appends carrying that many entries each (20,000 / N
/// messages per invocation, so about the same bytes), the shape RaftNode's appends have under load
/// (<c>cluster-load --shape</c>); the default is the one-entry row only.
/// </summary>
/// <remarks>
/// Warm-up: transport and raw invocations alternate until the JIT has compiled no method for
/// <see cref="JitQuietTime"/> (at least <see cref="MinWarmupRounds"/> pairs, at most <see cref="MaxWarmupTime"/>),
/// so the measured rounds run the transport's code at its final tier. A row of 20,000-message
/// invocations lasts well under a second, shorter than tiered compilation takes to promote the
/// hot methods (call counting, a 100 ms delay, instrumented code, then optimized code, all on a
/// background thread whose CPU the process's time includes): with a fixed five warm-ups (the
/// probe before 2026-12-02 09:00, or <c>--warmup-rounds 5</c>) the rounds measured tier-0,
/// instrumented and OSR code and the JIT itself. Each row prints how long it warmed up and how
/// many methods the JIT compiled during its measured rounds (0 = steady state).
/// </remarks>
internal static class TcpTransportCpuProbe
{
    private const int MinWarmupRounds = 5;
    private static readonly bool[] TlsSettings = [false, true];
    private static readonly TimeSpan JitQuietTime = TimeSpan.FromMilliseconds(1500);
    private static readonly TimeSpan MaxWarmupTime = TimeSpan.FromSeconds(30);

    public static int Run(string[] args)
    {
        int rounds = 30;
        string[] rows = ["128", "128tls", "1024", "1024tls"];
        int? fixedWarmupRounds = null;
        int[] entryCounts = [1];
        for (int i = 0; i < args.Length; i += 2)
        {
            string value = i + 1 < args.Length ? args[i + 1] : throw new CommandLineException($"{args[i]} needs a value.");
            switch (args[i])
            {
                case "--rounds":
                    rounds = CommandLine.Number<int>("--rounds", value);
                    break;
                case "--rows":
                    rows = value.Split(',');
                    if (rows.FirstOrDefault(r => r is not ("128" or "128tls" or "1024" or "1024tls")) is { } unknown)
                    {
                        throw new CommandLineException($"--rows takes 128, 128tls, 1024 and 1024tls separated by commas, not '{unknown}'.");
                    }

                    break;
                case "--entries":
                    entryCounts = CommandLine.Numbers<int>("--entries", value);
                    break;
                case "--warmup-rounds":
                    fixedWarmupRounds = CommandLine.Number<int>("--warmup-rounds", value);
                    break;
                default:
                    throw new CommandLineException($"Unknown option '{args[i]}'.");
            }
        }

        Console.WriteLine(FormattableString.Invariant($"{Environment.ProcessorCount} processors, load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]}, {rounds} rounds of 20,000 entries per row and side (20,000 / entries messages)"));
        Console.WriteLine("| entry | TLS | entries per message | transport wall ns/msg | raw wall ns/msg | raw / transport (wall) | transport CPU ns/msg | raw CPU ns/msg | raw / transport (CPU) | transport allocated B/msg | gen0 GCs per transport invocation | context switches per invocation, transport / raw |");
        Console.WriteLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (int entry in new[] { 128, 1024 })
        {
            foreach (var (tls, perMessage) in TlsSettings.SelectMany(t => entryCounts.Select(n => (t, n))))
            {
                if (!rows.Contains(FormattableString.Invariant($"{entry}{(tls ? "tls" : string.Empty)}")))
                {
                    continue;
                }

                var bench = new TcpTransportThroughputBenchmarks { EntryBytes = entry, Tls = tls, EntriesPerMessage = perMessage };
                int messages = bench.MessagesPerInvocation;
                string name = FormattableString.Invariant($"{entry} B{(tls ? " TLS" : string.Empty)}{(perMessage > 1 ? $" x {perMessage} entries" : string.Empty)}");
                bench.Setup();
                try
                {
                    var (warmups, warmupTime) = WarmUp(bench, messages, fixedWarmupRounds);
                    long compiledBefore = System.Runtime.JitInfo.GetCompiledMethodCount();
                    var samples = new List<Round>();
                    StoreLoad.AllocationSampler.Instance?.Start();
                    for (int i = 0; i < rounds; i++)
                    {
                        samples.Add(MeasureRound(bench, messages));
                    }

                    if (StoreLoad.AllocationSampler.Instance is { } sampler)
                    {
                        // Both sides' rounds are sampled; the raw copy allocates one 64 KiB buffer and a task per invocation (~3 B per message).
                        Console.WriteLine(FormattableString.Invariant($"// {name} allocation sampler (STORE_LOAD_ALLOCATION_TYPES=1), per transport message: ") + sampler.Stop((long)rounds * messages));
                    }

                    var transport = samples.Select(r => r.Transport).ToList();
                    var raw = samples.Select(r => r.Raw).ToList();
                    long allocated = samples.Sum(r => r.Allocated);
                    int gen0 = samples.Sum(r => r.Gen0);
                    double tw = Median(transport.Select(t => t.Wall)), rw = Median(raw.Select(t => t.Wall));
                    double tc = Median(transport.Select(t => t.Cpu)), rc = Median(raw.Select(t => t.Cpu));
                    double ts = Median(transport.Select(t => (double)t.Switches)), rs = Median(raw.Select(t => (double)t.Switches));
                    long compiledDuring = System.Runtime.JitInfo.GetCompiledMethodCount() - compiledBefore;
                    Console.WriteLine(FormattableString.Invariant($"// {name}: warm-up {warmups} pairs in {warmupTime.TotalSeconds:F1} s; {compiledDuring} methods compiled by the JIT during the {rounds} measured rounds"));
                    Console.WriteLine(FormattableString.Invariant(
                        $"// {name} transport, medians per invocation: sending thread CPU {Median(transport.Select(t => t.SenderCpu)):F0} ns/msg (the Send loop and the wait), GC pauses {Median(samples.Select(r => r.GcPauseMs)):F2} ms, {Median(samples.Select(r => (double)r.WorkItems)):F0} thread-pool work items, {Median(samples.Select(r => (double)r.Contentions)):F0} lock contentions"));
                    Console.WriteLine(FormattableString.Invariant($"| {entry} B | {(tls ? "yes" : "no")} | {perMessage} | {tw:F0} | {rw:F0} | {rw / tw:F2}x | {tc:F0} | {rc:F0} | {rc / tc:F2}x | {(double)allocated / rounds / messages:F0} | {(double)gen0 / rounds:F1} | {ts:F0} / {rs:F0} |"));
                }
                finally
                {
                    bench.Cleanup();
                }
            }
        }

        return 0;
    }

    private readonly record struct Round(Sample Transport, Sample Raw, long Allocated, int Gen0, double GcPauseMs, long WorkItems, long Contentions);

    /// <summary>
    /// One invocation: wall and process CPU per message, context switches, the CPU per message of the
    /// thread that ran it (for the transport: the Send loop and the wait), and the bytes allocated, gen0
    /// collections and GC pause during the invocation alone.
    /// </summary>
    private readonly record struct Sample(double Wall, double Cpu, long Switches, double SenderCpu, long Allocated, int Gen0, double GcPauseMs);

    /// <summary>One transport invocation then one raw copy, each timed, with the transport's allocation and gen0 GCs.</summary>
    private static Round MeasureRound(TcpTransportThroughputBenchmarks bench, int messages)
    {
        long workItemsBefore = ThreadPool.CompletedWorkItemCount;
        long contentionsBefore = Monitor.LockContentionCount;
        var transport = Measure(bench.TcpTransportSend, messages);
        long workItems = ThreadPool.CompletedWorkItemCount - workItemsBefore;
        long contentions = Monitor.LockContentionCount - contentionsBefore;
        return new Round(transport, Measure(bench.RawSocketCopy, messages), transport.Allocated, transport.Gen0, transport.GcPauseMs, workItems, contentions);
    }

    /// <summary>
    /// Measured rounds, discarded (the same code as the measured ones, so the rounds that count run
    /// no method for the first time): a fixed number, or until the JIT has been quiet for <see cref="JitQuietTime"/>.
    /// </summary>
    private static (int Pairs, TimeSpan Time) WarmUp(TcpTransportThroughputBenchmarks bench, int messages, int? fixedRounds)
    {
        long start = Stopwatch.GetTimestamp();
        long compiled = System.Runtime.JitInfo.GetCompiledMethodCount();
        long quietSince = start;
        int pairs = 0;
        while (true)
        {
            MeasureRound(bench, messages);
            pairs++;
            if (fixedRounds is { } rounds)
            {
                if (pairs >= rounds)
                {
                    break;
                }

                continue;
            }

            long now = System.Runtime.JitInfo.GetCompiledMethodCount();
            if (now != compiled)
            {
                compiled = now;
                quietSince = Stopwatch.GetTimestamp();
            }

            if ((pairs >= MinWarmupRounds && Stopwatch.GetElapsedTime(quietSince) >= JitQuietTime) || Stopwatch.GetElapsedTime(start) >= MaxWarmupTime)
            {
                break;
            }
        }

        return (pairs, Stopwatch.GetElapsedTime(start));
    }

    private static Sample Measure(Action invocation, int messages)
    {
        long switchesBefore = ContextSwitches();
        using var process = Process.GetCurrentProcess();
        var cpuBefore = process.TotalProcessorTime;
        long threadBefore = ThreadCpuNanoseconds();

        // Allocation and collections around the invocation alone: the /proc reads around it allocate
        // ~0.5 MB of strings per invocation, which are not the transport's.
        long allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        int gen0Before = GC.CollectionCount(0);
        var pauseBefore = GC.GetTotalPauseDuration();
        long start = Stopwatch.GetTimestamp();
        invocation();
        var wall = Stopwatch.GetElapsedTime(start);
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
        int gen0 = GC.CollectionCount(0) - gen0Before;
        double pauseMs = (GC.GetTotalPauseDuration() - pauseBefore).TotalMilliseconds;
        long thread = ThreadCpuNanoseconds() - threadBefore;
        process.Refresh();
        var cpu = process.TotalProcessorTime - cpuBefore;
        return new Sample(wall.TotalNanoseconds / messages, cpu.TotalNanoseconds / messages, ContextSwitches() - switchesBefore, (double)thread / messages, allocated, gen0, pauseMs);
    }

    private static long ThreadCpuNanoseconds() => ThreadCpuClock.Nanoseconds();

    /// <summary>
    /// The process's context switches so far (voluntary and not, every thread, from /proc): how
    /// often its threads blocked and were woken, or were preempted. Read outside the timed part;
    /// threads that ended meanwhile drop out of the sum, so a difference is indicative only.
    /// </summary>
    private static long ContextSwitches()
    {
        long total = 0;
        foreach (string task in Directory.EnumerateDirectories("/proc/self/task"))
        {
            try
            {
                foreach (string line in File.ReadLines(Path.Combine(task, "status")))
                {
                    if (line.StartsWith("voluntary_ctxt_switches:", StringComparison.Ordinal) || line.StartsWith("nonvoluntary_ctxt_switches:", StringComparison.Ordinal))
                    {
                        total += long.Parse(line.AsSpan(line.IndexOf(':', StringComparison.Ordinal) + 1).Trim(), CultureInfo.InvariantCulture);
                    }
                }
            }
            catch (IOException)
            {
                // The thread ended while being read.
            }
        }

        return total;
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
