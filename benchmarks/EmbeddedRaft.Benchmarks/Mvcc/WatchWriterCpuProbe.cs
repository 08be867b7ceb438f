using System.Diagnostics;
using System.Globalization;
using EmbeddedRaft.Mvcc;

namespace EmbeddedRaft.Benchmarks.Mvcc;

/// <summary>
/// <c>watch-cpu [live|live-reuse|many|lag|watched-only|reuse-only|alone-only|alloc|alloc-reuse|consumer] [--rounds 10] [--warmup 1] [--inflight 10000] [--task] [--gc-threads]</c>: what one watcher costs the store's writer (issue 16),
/// with figures a loaded machine blurs less than BenchmarkDotNet's wall time.
/// <para><c>live</c>: <see cref="WatchThroughputBenchmarks"/>'s invocations (200,000 synced puts, 10,000
/// in flight) alone and with one live prefix watcher, alternated A B B A so load drift favours neither.
/// Each invocation is timed by the wall clock, by the CPU time of the store's writer thread
/// (<c>/proc/self/task/TID/schedstat</c>, nanoseconds), by the whole process's CPU time, and by the
/// bytes allocated, with the thread-pool workers' CPU and context switches and the batches the store
/// committed (its syncs); per put, medians over the rounds, and the ratios alone / with the watcher (the
/// rate ratio: 1.0 = the watcher costs nothing). <c>live-reuse</c>: the same, the watch reusing its
/// events (<see cref="WatchRequest.ReuseEvents"/>). Each invocation also reports the JIT's compile time
/// in it (the whole process's, <see cref="System.Runtime.JitInfo"/>: tiering's rejits land in whichever
/// half runs at the time) and the events the writer built itself for the watcher (its buffer held
/// <c>WatchHub.MaxHeldBatchesPerWatcher</c> batches). <c>--warmup N</c>: alone/watched pairs run
/// first and not counted (default 1). <c>--inflight N</c>: puts kept in flight (default 10,000, the row's).
/// The clients await each put's <c>ValueTask</c>, as the store's own put rows do; <c>--task</c> turns each put into a
/// <c>Task</c> instead (the row's client until session 16: a diagnostic now); <c>--valuetask</c> is accepted and is the default.
/// Every invocation also reports the writer thread's run-queue wait (<c>schedstat</c>'s second field: time it was
/// runnable but another thread had its core). <c>--gc-threads</c> (live modes): the collections are also attributed
/// through the runtime's GC events (an <see cref="System.Diagnostics.Tracing.EventListener"/> on both halves alike):
/// how many the writer thread ran itself (a collection runs on the thread whose allocation found the gen0 budget
/// spent, while every other thread is stopped), their pause, and the bytes each promoted out of gen0.</para>
/// <para><c>many</c>: the same measures for 200,000 synced puts (10,000 in flight) to 10,000 keys
/// drawn at random (seed 1), alone and with 10,000 watchers, one per key, each read by its own
/// <c>await foreach</c> (created before the measured puts; the run ends when every event is read).</para>
/// <para><c>lag</c>: <see cref="WatchLaggingWriterBenchmarks"/> with no-sync writes, no watcher against
/// a watcher 100x slower than the write rate, alternated: the writer's p50/p99/p999 put latency,
/// medians over the rounds.</para>
/// <para><c>watched-only</c>, <c>reuse-only</c>, <c>alone-only</c>: only one kind of <c>live</c> invocation, for a profiler.</para>
/// <para><c>alloc</c>: <c>live</c>'s invocations, alone then watched, each round, with the runtime's
/// allocation sampling (one event per ~100 KB a thread allocates) on: bytes per put by type, on the
/// writer's thread and on the others (<c>alloc-reuse</c>: the watch reusing its events).</para>
/// <para><c>consumer</c>: what a live prefix watch's consumer costs per event by itself, with no writer
/// running beside it: per round, for an ordinary and a reusing watch alternated, 10,000 synced puts
/// (all in flight at once) while the watch's consumer reads nothing, then the consumer takes the
/// 10,000 events on this thread (every <c>MoveNextAsync</c> completes at once: they are buffered)
/// and reads each event's key, value and revision; timed by this thread's CPU clock
/// (<see cref="ThreadCpuClock"/>) and its allocated bytes, with the collections that ran meanwhile.
/// The events the writer built itself (its buffer held <c>WatchHub.MaxHeldBatchesPerWatcher</c>
/// batches) and the batches committed are printed: those events cost the consumer no decode.</para>
/// </summary>
internal static class WatchWriterCpuProbe
{
    private const int LivePuts = 200_000;

    /// <summary>The first word of the command line (default <c>live</c>).</summary>
    public static readonly string[] Modes = ["live", "live-reuse", "many", "lag", "watched-only", "reuse-only", "alone-only", "alloc", "alloc-reuse", "consumer"];

    public static int Run(string[] args)
    {
        string mode = args.Length > 0 && !args[0].StartsWith("--", StringComparison.Ordinal) ? args[0] : "live";
        if (!Modes.Contains(mode))
        {
            throw new CommandLineException($"Unknown mode '{mode}': {string.Join(", ", Modes)}.");
        }

        CommandLine.RefuseUnknown(args, ["--rounds", "--warmup", "--inflight"], ["--task", "--valuetask", "--gc-threads"], positional: args.Length > 0 && args[0] == mode ? 1 : 0);
        int rounds = CommandLine.Option(args, "--rounds", 10);
        int warmup = CommandLine.Option(args, "--warmup", 1);
        Console.WriteLine(FormattableString.Invariant($"{Environment.ProcessorCount} processors, load average {LoadAverage()}, mode {mode}, {rounds} rounds, {warmup} warm-up pairs"));
        if (mode is "live" or "live-reuse")
        {
            var bench = new WatchThroughputBenchmarks { WritesInFlight = CommandLine.Option(args, "--inflight", MvccWorkload.WritesInFlight), AwaitValueTasks = !args.Contains("--task") };
            bench.CreateKeys();
            bool reuse = mode == "live-reuse";
            Console.WriteLine(FormattableString.Invariant($"{bench.WritesInFlight} puts in flight{(bench.AwaitValueTasks ? ", each put's ValueTask awaited" : ", each put as a Task (--task)")}; GC: server {System.Runtime.GCSettings.IsServerGC}, DOTNET_GCgen0size {Environment.GetEnvironmentVariable("DOTNET_GCgen0size") ?? "unset"}"));
            using var gcThreads = args.Contains("--gc-threads") ? new GcByThread() : null;
            Alternate(rounds, warmup, reuse ? "with a live prefix watcher reusing its events" : "with a live prefix watcher", watch => MeasureLive(bench, watch, reuse, gcThreads));
        }
        else if (mode == "many")
        {
            var many = new ManyWatchersRun();
            Alternate(rounds, warmup, "with 10,000 watchers on distinct keys", watch => Measure(() => many.Open(watch), many.PutsAsync, many.Close, commits: () => many.Commits));
        }
        else if (mode is "watched-only" or "reuse-only" or "alone-only")
        {
            // For a profiler attached to the whole run: one kind of invocation only.
            var bench = new WatchThroughputBenchmarks();
            bench.CreateKeys();
            for (int round = 0; round < rounds; round++)
            {
                Console.WriteLine(Show(MeasureLive(bench, watch: mode != "alone-only", reuse: mode == "reuse-only")));
            }
        }
        else if (mode is "alloc" or "alloc-reuse")
        {
            AllocationsByType(rounds, reuse: mode == "alloc-reuse");
        }
        else if (mode == "lag")
        {
            Lag(rounds);
        }
        else if (mode == "consumer")
        {
            Consumer(rounds, warmup);
        }
        else
        {
            throw new UnreachableException($"Mode '{mode}' is in Modes but has no branch.");
        }

        Console.WriteLine(FormattableString.Invariant($"load average at the end {LoadAverage()}"));
        return 0;
    }

    private static void Alternate(int rounds, int warmup, string watchedName, Func<bool, Sample> measure)
    {
        var alone = new List<Sample>();
        var watched = new List<Sample>();

        // Warm-up: pairs not counted (printed, for the JIT's share in them).
        for (int i = 0; i < warmup; i++)
        {
            var first = measure(false);
            var second = measure(true);
            Console.WriteLine(FormattableString.Invariant($"warm-up {i + 1}: alone {Show(first)} | watched {Show(second)} | load {LoadAverage()}"));
        }

        for (int round = 0; round < rounds; round++)
        {
            bool aloneFirst = round % 2 == 0;
            var first = measure(!aloneFirst);
            var second = measure(aloneFirst);
            var (aloneSample, watchedSample) = aloneFirst ? (first, second) : (second, first);
            alone.Add(aloneSample);
            watched.Add(watchedSample);
            Console.WriteLine(FormattableString.Invariant(
                $"round {round + 1}: alone {Show(aloneSample)} | watched {Show(watchedSample)} | load {LoadAverage()}"));
        }

        Console.WriteLine("| per put (medians) | wall ns | writer CPU ns | writer run-queue wait ns | pool CPU ns | other CPU ns | process CPU ns | allocated B | gen0/1/2 per invocation | GC pause ms | GCs run by the writer (pause ms) | promoted from gen0 KiB per GC | lock contentions | pool work items | writer blocked / preempted | pool blocked / preempted | commits | responses | JIT ms / methods | writer-built events |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---:|---:|---:|---|---|---:|---:|---|---:|");
        Console.WriteLine(Row("alone", alone));
        Console.WriteLine(Row(watchedName, watched));
        Console.WriteLine(FormattableString.Invariant(
            $"rate ratio (wall alone / wall watched) {Median(alone, s => s.WallNs) / Median(watched, s => s.WallNs):F3}x; writer CPU watched / alone {Median(watched, s => s.WriterCpuNs) / Median(alone, s => s.WriterCpuNs):F3}x; process CPU watched / alone {Median(watched, s => s.ProcessCpuNs) / Median(alone, s => s.ProcessCpuNs):F3}x; commits watched / alone {Median(watched, s => s.Commits) / Math.Max(1, Median(alone, s => s.Commits)):F3}x"));
        var paired = alone.Zip(watched, (a, w) => a.WallNs / w.WallNs).Order().ToList();
        Console.WriteLine(FormattableString.Invariant($"per-round rate ratios: {string.Join(" ", paired.Select(r => r.ToString("F2", CultureInfo.InvariantCulture)))}"));
    }

    private static Sample MeasureLive(WatchThroughputBenchmarks bench, bool watch, bool reuse = false, GcByThread? gcThreads = null) =>
        Measure(
            bench.OpenEmptyStore,
            !watch ? bench.PutsAlone : reuse ? bench.PutsWithALiveReusingPrefixWatcher : bench.PutsWithALivePrefixWatcher,
            bench.CloseStore,
            watch ? () => (bench.LastResponses, bench.LastLargestResponse) : null,
            () => bench.Store.BatchesCommitted,
            () => bench.Store.Watches.HeldBoundEventCount,
            gcThreads);

    private static Sample Measure(Action open, Func<Task> run, Action close, Func<(long Responses, int Largest)>? responses = null, Func<long>? commits = null, Func<long>? writerBuilt = null, GcByThread? gcThreads = null)
    {
        open();
        try
        {
            int writer = WriterThreadId();
            GC.Collect();
            GC.WaitForPendingFinalizers();
            int gen0 = GC.CollectionCount(0), gen1 = GC.CollectionCount(1), gen2 = GC.CollectionCount(2);
            long allocated = GC.GetTotalAllocatedBytes(precise: true);
            var pause = GC.GetTotalPauseDuration();
            long commitsBefore = commits?.Invoke() ?? 0;
            long builtBefore = writerBuilt?.Invoke() ?? 0;
            var jit = System.Runtime.JitInfo.GetCompilationTime(currentThread: false);
            long jitMethods = System.Runtime.JitInfo.GetCompiledMethodCount(currentThread: false);
            long contentions = Monitor.LockContentionCount;
            long workItems = ThreadPool.CompletedWorkItemCount;
            var threads = ThreadCpuByKind();
            var switches = ContextSwitches(writer);
            var (writerCpu, writerWaited) = ThreadSchedNs(writer);
            var processCpu = Process.GetCurrentProcess().TotalProcessorTime;
            gcThreads?.Start(writer);
            long started = Stopwatch.GetTimestamp();
            run().GetAwaiter().GetResult();
            double wall = Stopwatch.GetElapsedTime(started).TotalNanoseconds;
            var gcs = gcThreads?.Stop() ?? default;
            double process = (Process.GetCurrentProcess().TotalProcessorTime - processCpu).TotalNanoseconds;
            var (writerCpuAfter, writerWaitedAfter) = ThreadSchedNs(writer);
            long writerUsed = writerCpuAfter - writerCpu;
            var switchesAfter = ContextSwitches(writer);
            var threadsAfter = ThreadCpuByKind();
            long bytes = GC.GetTotalAllocatedBytes(precise: true) - allocated;
            var (responseCount, largest) = responses?.Invoke() ?? (0, 0);
            long committed = (commits?.Invoke() ?? 0) - commitsBefore;
            long built = (writerBuilt?.Invoke() ?? 0) - builtBefore;
            var jitUsed = System.Runtime.JitInfo.GetCompilationTime(currentThread: false) - jit;
            long jitMethodsUsed = System.Runtime.JitInfo.GetCompiledMethodCount(currentThread: false) - jitMethods;
            return new Sample(
                wall / LivePuts,
                (double)writerUsed / LivePuts,
                process / LivePuts,
                (double)bytes / LivePuts,
                GC.CollectionCount(0) - gen0,
                GC.CollectionCount(1) - gen1,
                GC.CollectionCount(2) - gen2)
            {
                WriterRunQueueNs = (double)(writerWaitedAfter - writerWaited) / LivePuts,
                WriterGcs = gcs.ByWriter,
                WriterGcPauseMs = gcs.ByWriterPauseMs,
                PromotedKiBPerGc = gcs.Collections == 0 ? 0 : gcs.PromotedBytes / 1024.0 / gcs.Collections,
                GcThreads = gcThreads is not null,
                PoolCpuNs = (double)(threadsAfter.Pool - threads.Pool) / LivePuts,
                PoolWaits = threadsAfter.PoolVoluntary - threads.PoolVoluntary,
                PoolPreempted = threadsAfter.PoolInvoluntary - threads.PoolInvoluntary,
                Commits = committed,
                JitMs = jitUsed.TotalMilliseconds,
                JitMethods = jitMethodsUsed,
                WriterBuiltEvents = built,
                OtherCpuNs = (double)(threadsAfter.Other - threads.Other) / LivePuts,
                GcPauseMs = (GC.GetTotalPauseDuration() - pause).TotalMilliseconds,
                Contentions = Monitor.LockContentionCount - contentions,
                WorkItems = ThreadPool.CompletedWorkItemCount - workItems,
                Responses = responseCount,
                LargestResponse = largest,
                WriterWaits = switchesAfter.Voluntary - switches.Voluntary,
                WriterPreempted = switchesAfter.Involuntary - switches.Involuntary,
            };
        }
        finally
        {
            close();
        }
    }

    private static void Lag(int rounds)
    {
        var results = new Dictionary<WatchLaggingWriterBenchmarks.WatcherCondition, List<(double P50, double P99, double P999, double PutsPerSecond)>>
        {
            [WatchLaggingWriterBenchmarks.WatcherCondition.NoWatcher] = [],
            [WatchLaggingWriterBenchmarks.WatcherCondition.Lagging100x] = [],
        };
        for (int round = -1; round < rounds; round++)
        {
            var order = round % 2 == 0
                ? new[] { WatchLaggingWriterBenchmarks.WatcherCondition.NoWatcher, WatchLaggingWriterBenchmarks.WatcherCondition.Lagging100x }
                : [WatchLaggingWriterBenchmarks.WatcherCondition.Lagging100x, WatchLaggingWriterBenchmarks.WatcherCondition.NoWatcher];
            foreach (var condition in order)
            {
                var bench = new WatchLaggingWriterBenchmarks { Condition = condition, Durability = MvccDurability.NoSync };
                bench.CreateKeys();
                bench.OpenStoreAndWatcher();
                try
                {
                    bench.WriterPutLatency().GetAwaiter().GetResult();
                }
                finally
                {
                    bench.Close();
                }

                if (round >= 0)
                {
                    results[condition].Add(bench.LastLatency);
                }
            }
        }

        Console.WriteLine("| no-sync writer, medians of the rounds | puts/s | p50 ms | p99 ms | p999 ms |");
        Console.WriteLine("|---|---:|---:|---:|---:|");
        foreach (var (condition, list) in results)
        {
            Console.WriteLine(FormattableString.Invariant(
                $"| {condition} | {Median(list, r => r.PutsPerSecond):N0} | {Median(list, r => r.P50):F4} | {Median(list, r => r.P99):F4} | {Median(list, r => r.P999):F4} |"));
        }

        var none = results[WatchLaggingWriterBenchmarks.WatcherCondition.NoWatcher];
        var lagging = results[WatchLaggingWriterBenchmarks.WatcherCondition.Lagging100x];
        Console.WriteLine(FormattableString.Invariant(
            $"lagging / none: p50 {Median(lagging, r => r.P50) / Median(none, r => r.P50):F2}x, p99 {Median(lagging, r => r.P99) / Median(none, r => r.P99):F2}x, p999 {Median(lagging, r => r.P999) / Median(none, r => r.P999):F2}x, rate {Median(lagging, r => r.PutsPerSecond) / Median(none, r => r.PutsPerSecond):F2}x"));
    }

    private static void Consumer(int rounds, int warmup)
    {
        const int Events = 10_000;
        var keys = Enumerable.Range(0, Events).Select(i => System.Text.Encoding.ASCII.GetBytes($"watched/{i:D8}")).ToArray();
        var value = new byte[100];
        var bench = new WatchThroughputBenchmarks();
        bench.OpenEmptyStore();
        try
        {
            var store = bench.Store;
            var samples = new Dictionary<bool, List<ConsumerSample>> { [false] = [], [true] = [] };
            for (int round = -warmup; round < rounds; round++)
            {
                foreach (bool reuse in (round & 1) == 0 ? new[] { false, true } : [true, false])
                {
                    var sample = DrainBuffered(store, keys, value, reuse);
                    Console.WriteLine(FormattableString.Invariant(
                        $"{(round < 0 ? "warm-up" : $"round {round + 1}")} {(reuse ? "reusing" : "ordinary")}: {sample.CpuNs:F1} ns and {sample.Bytes:F1} B per event, GCs {sample.Gen0}/{sample.Gen1}/{sample.Gen2} ({sample.GcPauseMs:F1} ms paused), {sample.Responses} responses, {sample.Commits} commits, {sample.WriterBuilt} writer-built events"));
                    if (round >= 0)
                    {
                        samples[reuse].Add(sample);
                    }
                }
            }

            Console.WriteLine("| consumer alone, per event (medians) | CPU ns | allocated B | gen0/1/2 per 10,000 events (sum over rounds) | GC pause ms (sum) | commits per round | writer-built events (sum) |");
            Console.WriteLine("|---|---:|---:|---|---:|---:|---:|");
            foreach (var (reuse, list) in samples)
            {
                Console.WriteLine(FormattableString.Invariant(
                    $"| {(reuse ? "reusing" : "ordinary")} | {Median(list, s => s.CpuNs):F1} | {Median(list, s => s.Bytes):F1} | {list.Sum(s => s.Gen0)}/{list.Sum(s => s.Gen1)}/{list.Sum(s => s.Gen2)} | {list.Sum(s => s.GcPauseMs):F1} | {Median(list, s => s.Commits):F0} | {list.Sum(s => s.WriterBuilt)} |"));
            }
        }
        finally
        {
            bench.CloseStore();
        }
    }

    /// <summary>One <c>consumer</c> round: the puts with the watch's consumer idle, then the buffered events taken and read on this thread.</summary>
    private static ConsumerSample DrainBuffered(MvccStore store, byte[][] keys, byte[] value, bool reuse)
    {
        using var watch = store.Watch(new WatchRequest { Key = "watched/"u8.ToArray(), RangeEnd = KeyRange.PrefixEnd("watched/"u8), ReuseEvents = reuse });
        var enumerator = watch.GetAsyncEnumerator();
        try
        {
            long commits = store.BatchesCommitted;
            long built = store.Watches.HeldBoundEventCount;
            MvccWorkload.RunWindowedAsync(keys.Length, keys.Length, i => store.PutAsync(new PutRequest { Key = keys[i], Value = value }).AsTask()).GetAwaiter().GetResult();
            commits = store.BatchesCommitted - commits;
            built = store.Watches.HeldBoundEventCount - built;

            // Every put's event is buffered before its task completes (synced: notified at its batch's commit).
            GC.Collect();
            GC.WaitForPendingFinalizers();
            int gen0 = GC.CollectionCount(0), gen1 = GC.CollectionCount(1), gen2 = GC.CollectionCount(2);
            var pause = GC.GetTotalPauseDuration();
            long bytes = GC.GetAllocatedBytesForCurrentThread();
            long cpu = ThreadCpuClock.Nanoseconds();
            long events = 0;
            long responses = 0;
            long read = 0;
            while (events < keys.Length)
            {
                var next = enumerator.MoveNextAsync();
                if (!next.IsCompleted || !next.Result)
                {
                    throw new InvalidOperationException($"The watch's buffered events ended after {events} of {keys.Length}.");
                }

                responses++;
                foreach (var e in enumerator.Current.Events)
                {
                    // What a consumer reads of each event.
                    read += e.Kv.Key.Length + e.Kv.Value.Length + e.Kv.ModRevision;
                    events++;
                }
            }

            long cpuUsed = ThreadCpuClock.Nanoseconds() - cpu;
            long allocated = GC.GetAllocatedBytesForCurrentThread() - bytes;
            if (read == 0)
            {
                throw new InvalidOperationException("No event was read.");
            }

            return new ConsumerSample(
                (double)cpuUsed / events,
                (double)allocated / events,
                GC.CollectionCount(0) - gen0,
                GC.CollectionCount(1) - gen1,
                GC.CollectionCount(2) - gen2,
                (GC.GetTotalPauseDuration() - pause).TotalMilliseconds,
                responses,
                commits,
                built);
        }
        finally
        {
            enumerator.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    private static void AllocationsByType(int rounds, bool reuse)
    {
        var bench = new WatchThroughputBenchmarks();
        bench.CreateKeys();
        using var sampler = new AllocationSampler();
        foreach (bool watch in new[] { false, true })
        {
            // Warm-up, not counted.
            MeasureLive(bench, watch, reuse);
            var perType = new Dictionary<(string Type, bool Writer), long>();
            for (int round = 0; round < rounds; round++)
            {
                bench.OpenEmptyStore();
                try
                {
                    sampler.Start(WriterThreadId());
                    (!watch ? bench.PutsAlone() : reuse ? bench.PutsWithALiveReusingPrefixWatcher() : bench.PutsWithALivePrefixWatcher()).GetAwaiter().GetResult();
                    foreach (var (key, bytes) in sampler.Stop())
                    {
                        perType[key] = perType.GetValueOrDefault(key) + bytes;
                    }
                }
                finally
                {
                    bench.CloseStore();
                }
            }

            double puts = (double)LivePuts * rounds;
            Console.WriteLine(FormattableString.Invariant($"{(watch ? "with a live prefix watcher" : "alone")}: sampled bytes per put by type (writer thread | other threads)"));
            foreach (var ((type, writer), bytes) in perType.OrderByDescending(p => p.Value).Take(25))
            {
                Console.WriteLine(FormattableString.Invariant($"  {bytes / puts,8:F1} B  {(writer ? "writer" : "other "),-6}  {type}"));
            }

            Console.WriteLine(FormattableString.Invariant(
                $"  total: writer {perType.Where(p => p.Key.Writer).Sum(p => p.Value) / puts:F1} B, others {perType.Where(p => !p.Key.Writer).Sum(p => p.Value) / puts:F1} B per put"));
        }
    }

    /// <summary>The thread id of the store's writer thread (named "MvccStore writer"; Linux keeps 15 characters of it).</summary>
    private static int WriterThreadId()
    {
        var found = new List<int>();
        foreach (string task in Directory.GetDirectories("/proc/self/task"))
        {
            try
            {
                if (File.ReadAllText(Path.Combine(task, "comm")).StartsWith("MvccStore", StringComparison.Ordinal))
                {
                    found.Add(int.Parse(Path.GetFileName(task), CultureInfo.InvariantCulture));
                }
            }
            catch (IOException)
            {
                // The thread ended meanwhile.
            }
        }

        return found.Count == 1 ? found[0] : throw new InvalidOperationException($"Expected one MvccStore writer thread, found {found.Count}.");
    }

    /// <summary>
    /// CPU time run so far by the process's thread-pool workers and by its other threads except the
    /// store's writer, in nanoseconds, and the pool workers' context switches (voluntary: a worker
    /// blocked or went idle; involuntary: the scheduler preempted it). A thread that ended meanwhile
    /// drops out, so a difference of two calls is a lower bound for the pool.
    /// </summary>
    private static ThreadTotals ThreadCpuByKind()
    {
        long pool = 0;
        long other = 0;
        long poolVoluntary = 0;
        long poolInvoluntary = 0;
        foreach (string task in Directory.GetDirectories("/proc/self/task"))
        {
            try
            {
                string comm = File.ReadAllText(Path.Combine(task, "comm"));
                long used = long.Parse(File.ReadAllText(Path.Combine(task, "schedstat")).Split(' ')[0], CultureInfo.InvariantCulture);
                if (comm.StartsWith(".NET TP Worker", StringComparison.Ordinal))
                {
                    pool += used;
                    var (voluntary, involuntary) = ContextSwitches(int.Parse(Path.GetFileName(task), CultureInfo.InvariantCulture));
                    poolVoluntary += voluntary;
                    poolInvoluntary += involuntary;
                }
                else if (!comm.StartsWith("MvccStore", StringComparison.Ordinal))
                {
                    other += used;
                }
            }
            catch (IOException)
            {
                // The thread ended meanwhile.
            }
        }

        return new ThreadTotals(pool, other, poolVoluntary, poolInvoluntary);
    }

    /// <summary>
    /// The thread's context switches so far: voluntary (it blocked: for the writer, each fdatasync and
    /// each wait for a request, so per invocation about the batches committed) and involuntary (the
    /// scheduler preempted it for another thread).
    /// </summary>
    private static (long Voluntary, long Involuntary) ContextSwitches(int tid)
    {
        long voluntary = 0;
        long involuntary = 0;
        foreach (string line in File.ReadAllLines($"/proc/self/task/{tid}/status"))
        {
            if (line.StartsWith("voluntary_ctxt_switches:", StringComparison.Ordinal))
            {
                voluntary = long.Parse(line.AsSpan(line.IndexOf(':') + 1).Trim(), CultureInfo.InvariantCulture);
            }
            else if (line.StartsWith("nonvoluntary_ctxt_switches:", StringComparison.Ordinal))
            {
                involuntary = long.Parse(line.AsSpan(line.IndexOf(':') + 1).Trim(), CultureInfo.InvariantCulture);
            }
        }

        return (voluntary, involuntary);
    }

    /// <summary>CPU time the thread has run, in nanoseconds (the first field of schedstat).</summary>
    private static long ThreadCpuNs(int tid) => ThreadSchedNs(tid).Ran;

    /// <summary>
    /// The thread's schedstat: nanoseconds it has run, and nanoseconds it waited on a run queue (runnable, another
    /// thread on its core: preempted, or woken and not yet run). The writer's wait is the share of the wall it
    /// lost to the process's other threads and to other processes.
    /// </summary>
    private static (long Ran, long Waited) ThreadSchedNs(int tid)
    {
        string[] fields = File.ReadAllText($"/proc/self/task/{tid}/schedstat").Split(' ');
        return (long.Parse(fields[0], CultureInfo.InvariantCulture), long.Parse(fields[1], CultureInfo.InvariantCulture));
    }

    private static string LoadAverage() => File.ReadAllText("/proc/loadavg").Split(' ')[0];

    private static double Median<T>(List<T> items, Func<T, double> selector)
    {
        var sorted = items.Select(selector).Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static string Show(Sample s) =>
        FormattableString.Invariant(
            $"wall {s.WallNs:F0} ns, writer {s.WriterCpuNs:F0} ns (run-queue wait {s.WriterRunQueueNs:F0} ns), pool {s.PoolCpuNs:F0} ns, other {s.OtherCpuNs:F0} ns, process {s.ProcessCpuNs:F0} ns, {s.AllocatedBytes:F0} B per put, GCs {s.Gen0}/{s.Gen1}/{s.Gen2} ({s.GcPauseMs:F0} ms paused{(s.GcThreads ? FormattableString.Invariant($"; {s.WriterGcs} run by the writer, {s.WriterGcPauseMs:F0} ms; {s.PromotedKiBPerGc:F0} KiB promoted from gen0 per GC") : string.Empty)}), {s.Contentions} lock contentions, {s.WorkItems} pool work items, writer blocked {s.WriterWaits} / preempted {s.WriterPreempted} times, pool blocked {s.PoolWaits} / preempted {s.PoolPreempted} times, {s.Commits} commits, JIT {s.JitMs:F0} ms / {s.JitMethods} methods, {s.WriterBuiltEvents} writer-built events{(s.Responses > 0 ? FormattableString.Invariant($", {s.Responses} responses (largest {s.LargestResponse} events)") : string.Empty)}");

    private static string Row(string name, List<Sample> samples) =>
        FormattableString.Invariant(
            $"| {name} | {Median(samples, s => s.WallNs):F0} | {Median(samples, s => s.WriterCpuNs):F0} | {Median(samples, s => s.WriterRunQueueNs):F0} | {Median(samples, s => s.PoolCpuNs):F0} | {Median(samples, s => s.OtherCpuNs):F0} | {Median(samples, s => s.ProcessCpuNs):F0} | {Median(samples, s => s.AllocatedBytes):F0} | {Median(samples, s => s.Gen0):F0}/{Median(samples, s => s.Gen1):F0}/{Median(samples, s => s.Gen2):F0} | {Median(samples, s => s.GcPauseMs):F0} | {(samples.Count > 0 && samples[0].GcThreads ? FormattableString.Invariant($"{Median(samples, s => s.WriterGcs):F0} ({Median(samples, s => s.WriterGcPauseMs):F0})") : "-")} | {(samples.Count > 0 && samples[0].GcThreads ? FormattableString.Invariant($"{Median(samples, s => s.PromotedKiBPerGc):F0}") : "-")} | {Median(samples, s => s.Contentions):F0} | {Median(samples, s => s.WorkItems):F0} | {Median(samples, s => s.WriterWaits):F0} / {Median(samples, s => s.WriterPreempted):F0} | {Median(samples, s => s.PoolWaits):F0} / {Median(samples, s => s.PoolPreempted):F0} | {Median(samples, s => s.Commits):F0} | {Median(samples, s => s.Responses):F0} | {Median(samples, s => s.JitMs):F0} / {Median(samples, s => s.JitMethods):F0} | {Median(samples, s => s.WriterBuiltEvents):F0} |");

    /// <summary>The <c>many</c> invocation: a fresh store, optionally 10,000 watchers on distinct keys with their readers, then the puts.</summary>
    private sealed class ManyWatchersRun
    {
        private const int Watchers = 10_000;

        private readonly byte[][] _keys = Enumerable.Range(0, Watchers).Select(i => System.Text.Encoding.ASCII.GetBytes($"watcher/{i:D5}")).ToArray();
        private readonly int[] _order;
        private readonly byte[] _value = new byte[100];
        private string _directory = null!;
        private MvccStore _store = null!;
        private List<WatchStream> _watches = [];
        private List<Task> _readers = [];
        private int _received;
        private TaskCompletionSource _allReceived = new();

        public ManyWatchersRun()
        {
            var random = new Random(1);
            _order = Enumerable.Range(0, LivePuts).Select(_ => random.Next(Watchers)).ToArray();
        }

        /// <summary>Batches the current invocation's store committed so far.</summary>
        public long Commits => _store.BatchesCommitted;

        public void Open(bool watch)
        {
            _directory = MvccWorkload.NewDirectory("watch-many");
            _store = MvccStore.Open(_directory, MvccStoreEngine.Options);
            _received = 0;
            _allReceived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _watches = watch ? _keys.Select(key => _store.Watch(new WatchRequest { Key = key })).ToList() : [];
            _readers = _watches.Select(w => Task.Run(() => ReadAsync(w))).ToList();
        }

        public async Task PutsAsync()
        {
            await MvccWorkload.RunWindowedAsync(LivePuts, MvccWorkload.WritesInFlight, i => _store.PutAsync(new PutRequest { Key = _keys[_order[i]], Value = _value }).AsTask()).ConfigureAwait(false);
            if (_watches.Count > 0)
            {
                await _allReceived.Task.WaitAsync(TimeSpan.FromMinutes(2)).ConfigureAwait(false);
            }
        }

        public void Close()
        {
            foreach (var watch in _watches)
            {
                watch.Dispose();
            }

            _store.Dispose();
            Task.WhenAll(_readers).ContinueWith(_ => { }, TaskScheduler.Default).Wait();
            Directory.Delete(_directory, recursive: true);
        }

        private async Task ReadAsync(WatchStream watch)
        {
            try
            {
                await foreach (var response in watch.ConfigureAwait(false))
                {
                    if (Interlocked.Add(ref _received, response.Events.Count) == LivePuts)
                    {
                        _allReceived.TrySetResult();
                    }
                }
            }
            catch (ObjectDisposedException)
            {
                // The store closed at the end of the invocation.
            }
        }
    }

    /// <summary>
    /// The runtime's GC events (keyword GC, informational: a handful per collection) during one invocation: the
    /// collections, those raised on the writer's thread (a workstation collection runs on the thread whose
    /// allocation triggered it), each one's pause from the suspension's start to the restart's end, and the
    /// bytes promoted out of gen0.
    /// </summary>
    private sealed class GcByThread : System.Diagnostics.Tracing.EventListener
    {
        private readonly object _gate = new();
        private bool _on;
        private int _writer;
        private GcTotals _totals;
        private DateTime _suspended;
        private bool _suspendedByWriter;

        public void Start(int writerThreadId)
        {
            lock (_gate)
            {
                _writer = writerThreadId;
                _totals = default;
                _suspended = default;
                _on = true;
            }
        }

        public GcTotals Stop()
        {
            lock (_gate)
            {
                _on = false;
                return _totals;
            }
        }

        protected override void OnEventSourceCreated(System.Diagnostics.Tracing.EventSource eventSource)
        {
            if (eventSource.Name == "Microsoft-Windows-DotNETRuntime")
            {
                EnableEvents(eventSource, System.Diagnostics.Tracing.EventLevel.Informational, (System.Diagnostics.Tracing.EventKeywords)0x1);
            }
        }

        protected override void OnEventWritten(System.Diagnostics.Tracing.EventWrittenEventArgs eventData)
        {
            string name = eventData.EventName ?? string.Empty;
            lock (_gate)
            {
                if (!_on)
                {
                    return;
                }

                bool byWriter = (int)eventData.OSThreadId == _writer;
                if (name.StartsWith("GCStart", StringComparison.Ordinal))
                {
                    _totals.Collections++;
                    _totals.ByWriter += byWriter ? 1 : 0;
                }
                else if (name.StartsWith("GCSuspendEEBegin", StringComparison.Ordinal))
                {
                    _suspended = eventData.TimeStamp;
                    _suspendedByWriter = byWriter;
                }
                else if (name.StartsWith("GCRestartEEEnd", StringComparison.Ordinal) && _suspended != default)
                {
                    double ms = (eventData.TimeStamp - _suspended).TotalMilliseconds;
                    _totals.PauseMs += ms;
                    _totals.ByWriterPauseMs += _suspendedByWriter ? ms : 0;
                    _suspended = default;
                }
                else if (name.StartsWith("GCHeapStats", StringComparison.Ordinal) && eventData.PayloadNames is { } names && names.IndexOf("TotalPromotedSize0") is int at and >= 0)
                {
                    _totals.PromotedBytes += Convert.ToInt64(eventData.Payload![at], CultureInfo.InvariantCulture);
                }
            }
        }
    }

    private struct GcTotals
    {
        public int Collections;
        public int ByWriter;
        public double PauseMs;
        public double ByWriterPauseMs;
        public long PromotedBytes;
    }

    /// <summary>Sums the runtime's allocation samples (AllocationTick, ~100 KB each) by type and by whether the writer thread allocated them.</summary>
    private sealed class AllocationSampler : System.Diagnostics.Tracing.EventListener
    {
        private readonly object _gate = new();
        private Dictionary<(string Type, bool Writer), long>? _samples;
        private int _writer;

        public void Start(int writerThreadId)
        {
            lock (_gate)
            {
                _writer = writerThreadId;
                _samples = [];
            }
        }

        public Dictionary<(string Type, bool Writer), long> Stop()
        {
            lock (_gate)
            {
                var samples = _samples ?? [];
                _samples = null;
                return samples;
            }
        }

        protected override void OnEventSourceCreated(System.Diagnostics.Tracing.EventSource eventSource)
        {
            if (eventSource.Name == "Microsoft-Windows-DotNETRuntime")
            {
                EnableEvents(eventSource, System.Diagnostics.Tracing.EventLevel.Verbose, (System.Diagnostics.Tracing.EventKeywords)0x1);
            }
        }

        protected override void OnEventWritten(System.Diagnostics.Tracing.EventWrittenEventArgs eventData)
        {
            if (eventData.EventName is not { } name || !name.StartsWith("GCAllocationTick", StringComparison.Ordinal) || eventData.PayloadNames is null)
            {
                return;
            }

            int typeAt = eventData.PayloadNames.IndexOf("TypeName");
            int amountAt = eventData.PayloadNames.IndexOf("AllocationAmount64");
            if (typeAt < 0 || amountAt < 0)
            {
                return;
            }

            string type = eventData.Payload![typeAt] as string ?? "?";
            long amount = Convert.ToInt64(eventData.Payload[amountAt], CultureInfo.InvariantCulture);
            lock (_gate)
            {
                if (_samples is { } samples)
                {
                    var key = (type, (int)eventData.OSThreadId == _writer);
                    samples[key] = samples.GetValueOrDefault(key) + amount;
                }
            }
        }
    }

    private readonly record struct ConsumerSample(double CpuNs, double Bytes, int Gen0, int Gen1, int Gen2, double GcPauseMs, long Responses, long Commits, long WriterBuilt);

    private readonly record struct ThreadTotals(long Pool, long Other, long PoolVoluntary, long PoolInvoluntary);

    private readonly record struct Sample(double WallNs, double WriterCpuNs, double ProcessCpuNs, double AllocatedBytes, int Gen0, int Gen1, int Gen2)
    {
        /// <summary>CPU of the thread-pool workers per put (the watcher's consumer, the writers' continuations).</summary>
        public double PoolCpuNs { get; init; }

        /// <summary>Time per put the writer thread was runnable but waited for a core (schedstat's run-queue wait).</summary>
        public double WriterRunQueueNs { get; init; }

        /// <summary>Whether the GC attribution below was collected (<c>--gc-threads</c>).</summary>
        public bool GcThreads { get; init; }

        /// <summary>Collections the writer thread ran itself (its allocation found the gen0 budget spent).</summary>
        public int WriterGcs { get; init; }

        /// <summary>The pauses (suspension to restart) of the collections the writer ran, in milliseconds.</summary>
        public double WriterGcPauseMs { get; init; }

        /// <summary>Bytes promoted out of gen0 per collection, in KiB (what a collection had to copy or keep: the live part of gen0).</summary>
        public double PromotedKiBPerGc { get; init; }

        /// <summary>CPU of the other threads except the writer per put (the benchmark's own, GC's background thread).</summary>
        public double OtherCpuNs { get; init; }

        public double GcPauseMs { get; init; }

        /// <summary>Times a thread waited for a lock another held (Monitor, the whole process).</summary>
        public long Contentions { get; init; }

        public long WorkItems { get; init; }

        /// <summary>Responses the watcher received (live mode; 0 alone).</summary>
        public long Responses { get; init; }

        public int LargestResponse { get; init; }

        /// <summary>Times the writer thread blocked (voluntary context switches: fdatasync, waiting for requests).</summary>
        public long WriterWaits { get; init; }

        /// <summary>Times the scheduler preempted the writer thread for another one.</summary>
        public long WriterPreempted { get; init; }

        /// <summary>The thread-pool workers' voluntary context switches (blocked or gone idle; a lower bound: workers that ended drop out).</summary>
        public long PoolWaits { get; init; }

        /// <summary>Times the scheduler preempted a thread-pool worker.</summary>
        public long PoolPreempted { get; init; }

        /// <summary>Batches the store committed (each a sync: the writes' group commits).</summary>
        public long Commits { get; init; }

        /// <summary>The JIT's compile time in the invocation, every thread (tier-0 code and tiering's rejits alike).</summary>
        public double JitMs { get; init; }

        /// <summary>Methods the JIT compiled in the invocation, every thread.</summary>
        public long JitMethods { get; init; }

        /// <summary>Events the writer built itself for the watcher (its buffer held the hub's bound of pending batches).</summary>
        public long WriterBuiltEvents { get; init; }
    }
}
