using System.Diagnostics;

namespace EmbeddedRaft.Benchmarks.StoreLoad;

/// <summary>
/// Drives one row: closed-loop callers (each issues an operation, waits for it, issues the next)
/// or an open-loop schedule (operations issued at a fixed rate whatever the system's answers, each
/// timed from when it was due, so a stalled system cannot hide its backlog: no coordinated
/// omission). Only operations completing inside the measured window, after the warm-up, count.
/// </summary>
internal static class StoreLoadRunner
{
    /// <summary>Bound on waiting for the callers to finish their last operation after the window.</summary>
    private static readonly TimeSpan s_drainTimeout = TimeSpan.FromSeconds(60);

    /// <summary>Fills every key once with the 1 KiB value (<paramref name="inFlight"/> puts in flight, spread over the members); returns puts/s.</summary>
    public static async Task<double> PreloadAsync(IKvClusterUnderLoad cluster, StoreLoadData data, int inFlight)
    {
        int next = -1;
        var clock = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, inFlight).Select(worker => Task.Run(async () =>
        {
            int member = worker % 3;
            for (int key = Interlocked.Increment(ref next); key < data.KeyCount; key = Interlocked.Increment(ref next))
            {
                await cluster.PutAsync(member, data.Keys[key], data.Value, CancellationToken.None);
            }
        }));
        await Task.WhenAll(workers);
        return data.KeyCount / clock.Elapsed.TotalSeconds;
    }

    /// <summary>How many operations a closed-loop caller runs before it yields its thread (see the loop).</summary>
    private const int YieldEveryOperations = 64;

    public static async Task<StoreLoadResult> RunClosedLoopAsync(
        IKvClusterUnderLoad cluster, StoreLoadWorkload workload, int callers, StoreLoadData data, StoreLoadSettings settings, int seed)
    {
        using var stop = new CancellationTokenSource();
        var failures = new FailureTally();
        // One histogram per thread that completes operations, not per caller: the threads that
        // run the callers' continuations (a release pass runs a round's readers one after another
        // on one thread) keep theirs in cache, where 1,024 callers' own histograms (18 KB each)
        // cost a miss or two per operation. Each is written only by its own thread.
        using var histograms = new ThreadLocal<LatencyHistogram>(() => new LatencyHistogram(), trackAllValues: true);
        var tasks = new Task[callers];
        int measuring = 0;
        int leader = cluster.LeaderIndex;
        for (int i = 0; i < callers; i++)
        {
            // Caller 0 talks to the leader, the others round-robin over the three members.
            int member = (leader + i) % 3;
            var random = new Random(unchecked((seed * 1_000_003) + i));
            tasks[i] = Task.Run(async () =>
            {
                // This caller's key of each operation (StoreLoadData.WriteKey), reused once the operation completed.
                byte[] keyBuffer = new byte[StoreLoadData.MaxKeyBytes];
                int sinceYield = 0;
                while (!stop.IsCancellationRequested)
                {
                    // A serializable read completes synchronously, so without this a caller never
                    // gives its thread back: 1,024 such callers hold every pool thread, and the
                    // timers that end the warm-up and the row (Task.Delay below) wait behind them
                    // for minutes as the pool adds a thread at a time. Task.Yield queues to the
                    // pool's global queue, where those timers' continuations wait too.
                    if (++sinceYield == YieldEveryOperations)
                    {
                        sinceYield = 0;
                        await Task.Yield();
                    }

                    var operation = data.Plan(workload, random);
                    long start = Stopwatch.GetTimestamp();
                    try
                    {
                        int keyLength = StoreLoadData.WriteKey(operation.KeyIndex, keyBuffer);
                        await data.ExecuteAsync(cluster, workload, member, keyBuffer.AsMemory(0, keyLength), operation.Write);
                    }
#pragma warning disable CA1031 // A failed operation is counted and reported with its message, not fatal.
                    catch (Exception failure)
#pragma warning restore CA1031
                    {
                        failures.Add(failure, counted: Volatile.Read(ref measuring) == 1);
                        continue;
                    }

                    if (Volatile.Read(ref measuring) == 1)
                    {
                        histograms.Value!.Record(Stopwatch.GetTimestamp() - start);
                    }
                }
            });
        }

        await Task.Delay(TimeSpan.FromSeconds(settings.WarmupSeconds));
        var cost = CostMeter.Start(cluster);
        using var readRounds = ReadRoundCounter.Start();
        AllocationSampler.Instance?.Start();
        Consensus.GcProbe.Instance?.Start();
        var clock = Stopwatch.StartNew();
        Volatile.Write(ref measuring, 1);
        await Task.Delay(TimeSpan.FromSeconds(settings.Seconds));
        Volatile.Write(ref measuring, 0);
        readRounds.Stop();
        double elapsedSeconds = clock.Elapsed.TotalSeconds;
        double cpuMicroseconds = cost.ElapsedMicroseconds();
        var allocations = cost.Allocations();
        var jit = cost.Jit();
        await stop.CancelAsync();
        await Task.WhenAll(tasks).WaitAsync(s_drainTimeout);

        var all = new LatencyHistogram();
        foreach (var histogram in histograms.Values)
        {
            all.Add(histogram);
        }

        if (AllocationSampler.Instance is { } sampler)
        {
            Console.WriteLine($"<!-- {workload.Name()}, {callers} clients: {sampler.Stop(all.Count)} -->");
        }

        if (Consensus.GcProbe.Instance is { } probe)
        {
            Console.WriteLine($"<!-- {workload.Name()}, {callers} clients: {probe.Stop(all.Count)} -->");
        }

        if (readRounds.Summary() is { } rounds)
        {
            Console.WriteLine($"<!-- {workload.Name()}, {callers} clients: {rounds} -->");
        }

        return Result(cluster, workload, callers, offered: null, all, elapsedSeconds, failures, notIssued: 0, cpuMicroseconds) with
        {
            AllocatedBytesPerOperation = all.Count > 0 ? (double)allocations.AllocatedBytes / all.Count : double.NaN,
            Collections = FormattableString.Invariant($"{allocations.Gen0}/{allocations.Gen1}/{allocations.Gen2}"),
            JitMethods = jit.Methods,
            JitMicrosecondsPerOperation = all.Count > 0 ? jit.Time.TotalMicroseconds / all.Count : double.NaN,
        };
    }

    public static async Task<StoreLoadResult> RunOpenLoopAsync(
        IKvClusterUnderLoad cluster, StoreLoadWorkload workload, double ratePerSecond, StoreLoadData data, StoreLoadSettings settings, int seed)
    {
        var histogram = new LatencyHistogram();
        var failures = new FailureTally();
        var random = new Random(seed);
        int leader = cluster.LeaderIndex;
        double ticksPerOperation = Stopwatch.Frequency / ratePerSecond;
        long start = Stopwatch.GetTimestamp();
        long windowStart = start + (long)(settings.WarmupSeconds * Stopwatch.Frequency);
        long windowEnd = windowStart + (long)(settings.Seconds * Stopwatch.Frequency);
        long issued = 0;
        int outstanding = 0;
        long completedInWindow = 0;
        CostMeter? cost = null;

        async Task RunOneAsync(long due, int member, (int KeyIndex, bool Write) operation)
        {
            bool inWindow = due >= windowStart && due < windowEnd;
            try
            {
                await data.ExecuteAsync(cluster, workload, member, data.Keys[operation.KeyIndex], operation.Write);
                long done = Stopwatch.GetTimestamp();
                if (inWindow)
                {
                    histogram.RecordConcurrent(done - due);
                }

                if (done >= windowStart && done < windowEnd)
                {
                    Interlocked.Increment(ref completedInWindow);
                }
            }
#pragma warning disable CA1031 // A failed operation is counted and reported with its message, not fatal.
            catch (Exception failure)
#pragma warning restore CA1031
            {
                failures.Add(failure, counted: inWindow);
            }
            finally
            {
                Interlocked.Decrement(ref outstanding);
            }
        }

        // Operation k is due at start + k / rate; the schedule ends with the last one due inside the window.
        // How late each operation due in the window went out (the loop wakes about every millisecond
        // when the thread pool runs its continuation; on two busy cores later) is part of its latency.
        long dueInWindow = (long)((windowEnd - start) / ticksPerOperation);
        var issueLag = new LatencyHistogram();
        while (true)
        {
            long now = Stopwatch.GetTimestamp();
            if (cost is null && now >= windowStart)
            {
                cost = CostMeter.Start(cluster);
            }

            // Issue every operation due by now; at the outstanding bound the rest wait (and their
            // latency, timed from when they were due, grows while they do).
            long dueCount = Math.Min(dueInWindow, (long)((now - start) / ticksPerOperation));
            while (issued < dueCount && Volatile.Read(ref outstanding) < settings.MaxOutstanding)
            {
                // Starting a call costs CPU on this thread (a gRPC call far more than an in-process
                // one): never let one burst run past the window.
                if ((issued & 63) == 0 && Stopwatch.GetTimestamp() >= windowEnd)
                {
                    break;
                }

                long due = start + (long)(issued * ticksPerOperation);
                if (due >= windowStart && due < windowEnd)
                {
                    issueLag.Record(Stopwatch.GetTimestamp() - due);
                }

                int member = (leader + (int)(issued % 3)) % 3;
                Interlocked.Increment(ref outstanding);
                _ = RunOneAsync(due, member, data.Plan(workload, random));
                issued++;
            }

            if (now >= windowEnd)
            {
                break;
            }

            await Task.Delay(1);
        }

        Console.WriteLine(FormattableString.Invariant(
            $"<!-- {workload.Name()}, open {ratePerSecond:F0}/s: operations went out late by p50 {issueLag.PercentileMilliseconds(0.50):F2} ms, p99 {issueLag.PercentileMilliseconds(0.99):F2} ms behind their due time (part of each latency in the row) -->"));
        long notIssued = Math.Max(0, dueInWindow - issued);
        double cpuMicroseconds = (cost ?? CostMeter.Start(cluster)).ElapsedMicroseconds();
        var drainDeadline = Stopwatch.StartNew();
        while (Volatile.Read(ref outstanding) > 0 && drainDeadline.Elapsed < s_drainTimeout)
        {
            await Task.Delay(10);
        }

        // Throughput is what completed inside the window (a system that falls behind completes
        // fewer than were offered); latency is that of every operation due inside the window,
        // however late it completed.
        long completed = Interlocked.Read(ref completedInWindow);
        return Result(cluster, workload, concurrency: 0, offered: ratePerSecond, histogram, settings.Seconds, failures, notIssued, cpuMicroseconds) with
        {
            OperationsPerSecond = completed / settings.Seconds,
            CpuMicrosecondsPerOperation = completed > 0 ? cpuMicroseconds / completed : double.NaN,
        };
    }

    private static StoreLoadResult Result(
        IKvClusterUnderLoad cluster, StoreLoadWorkload workload, int concurrency, double? offered, LatencyHistogram histogram,
        double elapsedSeconds, FailureTally failures, long notIssued, double cpuMicroseconds) => new(
            cluster.Name,
            workload,
            concurrency,
            offered,
            histogram.Count / elapsedSeconds,
            histogram.PercentileMilliseconds(0.50),
            histogram.PercentileMilliseconds(0.99),
            histogram.PercentileMilliseconds(0.999),
            histogram.Count,
            failures.Counted,
            notIssued,
            failures.First,
            histogram.Count > 0 ? cpuMicroseconds / histogram.Count : double.NaN,
            StoreLoadGenerator.LoadAverage());

    /// <summary>Failed operations: how many inside the window, and the first message seen (for the report).</summary>
    private sealed class FailureTally
    {
        private long _counted;
        private string? _first;

        public long Counted => Interlocked.Read(ref _counted);

        public string? First => Volatile.Read(ref _first);

        public void Add(Exception failure, bool counted)
        {
            if (counted)
            {
                Interlocked.Increment(ref _counted);
            }

            Interlocked.CompareExchange(ref _first, $"{failure.GetType().Name}: {failure.Message}", null);
        }
    }

    /// <summary>CPU time of this process and of the system's own processes since <see cref="Start"/>.</summary>
    private sealed class CostMeter
    {
        private readonly IKvClusterUnderLoad _cluster;
        private readonly TimeSpan _before;

        private readonly long _allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        private readonly int _gen0Before = GC.CollectionCount(0);
        private readonly int _gen1Before = GC.CollectionCount(1);
        private readonly int _gen2Before = GC.CollectionCount(2);

        // The JIT's work in the window: a row that starts in a fresh process measures the runtime's
        // tiered compilation too (docs/benchmarks.md, "Replicated puts, session 23": ~4,500 methods
        // and ~18% of the put row's CPU at 1,024 clients after 2 s of warm-up), which a long-running
        // member does not pay; printed beside the row so a reader can tell.
        private readonly long _jitMethodsBefore = System.Runtime.JitInfo.GetCompiledMethodCount();
        private readonly TimeSpan _jitTimeBefore = System.Runtime.JitInfo.GetCompilationTime();

        private CostMeter(IKvClusterUnderLoad cluster)
        {
            _cluster = cluster;
            _before = Now(cluster);
        }

        public static CostMeter Start(IKvClusterUnderLoad cluster) => new(cluster);

        public double ElapsedMicroseconds() => (Now(_cluster) - _before).TotalMicroseconds;

        /// <summary>Bytes this process allocated (every thread) and garbage collections (gen 0/1/2) since <see cref="Start"/>.</summary>
        public (long AllocatedBytes, int Gen0, int Gen1, int Gen2) Allocations() => (
            GC.GetTotalAllocatedBytes(precise: true) - _allocatedBefore,
            GC.CollectionCount(0) - _gen0Before,
            GC.CollectionCount(1) - _gen1Before,
            GC.CollectionCount(2) - _gen2Before);

        /// <summary>Methods the JIT compiled (every thread, every tier) and the time it spent compiling since <see cref="Start"/>.</summary>
        public (long Methods, TimeSpan Time) Jit() => (
            System.Runtime.JitInfo.GetCompiledMethodCount() - _jitMethodsBefore,
            System.Runtime.JitInfo.GetCompilationTime() - _jitTimeBefore);

        private static TimeSpan Now(IKvClusterUnderLoad cluster)
        {
            using var self = Process.GetCurrentProcess();
            return self.TotalProcessorTime + cluster.ExternalProcessorTime;
        }
    }
}
