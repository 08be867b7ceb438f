using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

namespace EmbeddedRaft.Benchmarks;

/// <summary>Entry point: <c>cluster-load ...</c> runs the whole-cluster load generator
/// (<see cref="Consensus.ClusterLoadGenerator"/>), <c>store-load ...</c> the key-value cluster load
/// generator beside etcd and DotNext (<see cref="StoreLoad.StoreLoadGenerator"/>), <c>tcp-cpu</c> the TCP
/// transport's wall and CPU time per message beside a raw socket (<see cref="Transport.TcpTransportCpuProbe"/>), <c>tcp-parts</c>
/// its per-message parts (queue, encode, decode) timed on one thread (<see cref="Transport.TcpTransportPartsProbe"/>), <c>watch-cpu</c>
/// the store writer's CPU per put with and without a watcher (<see cref="Mvcc.WatchWriterCpuProbe"/>), <c>range-cpu</c> the
/// store's CPU per single-key range on one thread, or per key index lookup with --count-only (<see cref="Mvcc.RangeCpuProbe"/>), <c>index-put-cpu</c>
/// the key index's CPU per put of an existing key (<see cref="Mvcc.KeyIndexPutProbe"/>), <c>compaction-bytes</c> the bytes a
/// physical compaction writes to the store's B+tree and its leaf fill after it (<see cref="Mvcc.CompactionBytesProbe"/>), <c>wal-flush</c> write-ahead logs alone on the disk with the
/// cluster's batch shape (<see cref="Wal.WalFlushCostProbe"/>); anything else goes to BenchmarkDotNet's switcher, so
/// <c>--filter '*Wal*'</c>, <c>--list flat</c> and every other BenchmarkDotNet option work.</summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Length == 0 || !Commands.TryGetValue(args[0], out var command))
        {
            var config = ManualConfig.Create(DefaultConfig.Instance).WithBuildTimeout(GeneratedProjectBuildTimeout);
            if (args.Any(IsInProcessSwitch))
            {
                // Every job in this process, the classes' own [SimpleJob]s included (see InProcessEverywhere).
                args = [.. args.Where(arg => !IsInProcessSwitch(arg))];
                config = config.AddJob(InProcessEverywhere);
            }

            BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, config);
            return 0;
        }

        if (CommandLine.WantsHelp(args.Skip(1)))
        {
            Console.WriteLine(command.Usage);
            return 0;
        }

        try
        {
            return await command.Run(args[1..]);
        }
        catch (CommandLineException e)
        {
            // Thrown only while a command reads its options: nothing was started yet.
            Console.Error.WriteLine($"{args[0]}: {e.Message}");
            Console.Error.WriteLine(command.Usage);
            return 2;
        }
    }

    /// <summary>The console commands, by their first word: how each runs and its usage (printed for <c>--help</c> or a bad option).</summary>
    private static readonly Dictionary<string, (Func<string[], Task<int>> Run, string Usage)> Commands = new()
    {
        ["cluster-load"] = (Consensus.ClusterLoadGenerator.RunAsync, """
            cluster-load [--systems raftnode,dotnext] [--inflight 1,16,256,1024] [--seconds 10] [--warmup-seconds 2]
                         [--transport inprocess|tcp|tcp,inprocess] [--tls] [--shape] [--readies-in-flight 1,8]
                         [--snapshot-every-entries N] [--log-cache-bytes N] [--retained-entries N] [--fsync-ms N]
              Three-node clusters on the real disk, closed-loop 1 KiB proposals: throughput, p50/p99/p999, fsyncs,
              CPU and bytes per proposal, collections per generation, GC pause and background-GC CPU per proposal.
              CLUSTER_LOAD_GC=1 prints what the garbage collector did per row.
            """),
        ["store-load"] = (StoreLoad.StoreLoadGenerator.RunAsync, """
            store-load [--systems store,etcd,dotnext,harness] [--workloads put,linearizable-read,serializable-read,txn-compare-and-put,read-90-write-10]
                       [--clients 1,16,256,1024] [--rates 50000] [--open-loop-workload put] [--open-loop-systems store]
                       [--max-outstanding 20000] [--seconds 10] [--warmup-seconds 2] [--keys 100000] [--preload-in-flight 256]
                       [--etcd-connections 4] [--etcdctl-check-perf s|m|l|xl|off] [--store-snapshot-every-entries N]
                       [--csv FILE] [--chart FILE.svg] [--dir DIRECTORY] [--seed N]
            store-load chart RUN.csv CHART.svg TITLE
              The replicated key-value store beside etcd 3.4 and DotNext: closed-loop rows per workload and client
              count, then open-loop rows. CLUSTER_LOAD_GC=1 prints the GC probe per row.
            """),
        ["tcp-cpu"] = (args => Task.FromResult(Transport.TcpTransportCpuProbe.Run(args)), """
            tcp-cpu [--rounds 30] [--rows 128,128tls,1024,1024tls] [--entries 1,8] [--warmup-rounds N]
              The TCP transport's wall and CPU time per Append message beside a raw socket copying the same bytes.
            """),
        ["tcp-parts"] = (args => Task.FromResult(Transport.TcpTransportPartsProbe.Run(args)), """
            tcp-parts [--rounds 200] [--entries 128,1024]
              The transport's per-message parts (queue, encode, decode, and the floor a decoder cannot go under) timed on one thread.
            """),
        ["watch-cpu"] = (args => Task.FromResult(Mvcc.WatchWriterCpuProbe.Run(args)), $"""
            watch-cpu [{string.Join('|', Mvcc.WatchWriterCpuProbe.Modes)}]
                      [--rounds 10] [--warmup 1] [--inflight 10000] [--task] [--gc-threads]
              The store writer's CPU per put with and without a watcher (modes: WatchWriterCpuProbe's summary).
            """),
        ["range-cpu"] = (Mvcc.RangeCpuProbe.RunAsync, """
            range-cpu [--reads 500000] [--rounds 5] [--count-only] [--evict-lines N] [--batch N]
              The store's CPU per single-key range on one thread.
            """),
        ["wal-flush"] = (Wal.WalFlushCostProbe.RunAsync, """
            wal-flush [--logs 3] [--batches 128,512,1024] [--seconds 20] [--record-bytes 1024] [--reuse on|off] [--release-every 10000]
              Write-ahead logs alone on the real disk, the RaftNode row's shape: N records then one synced append per batch,
              segments released as they go; MB/s per log, flush p50/p90/p99 and bytes per flush. --reuse off: no segment reuse.
            """),
        ["compaction-bytes"] = (Mvcc.CompactionBytesProbe.RunAsync, """
            compaction-bytes [--keys 100000] [--second-puts N] [--value-bytes 1024] [--puts-after 100000] [--rounds 2]
                             [--in-flight 256] [--seed 27] [--dir DIRECTORY]
              Bytes one physical compaction writes to a NoSync store's B+tree after a put row over random keys, and the
              key bucket's leaf fill, pages and file size after each phase (preload, puts, compaction, the puts after it).
            """),
        ["index-put-cpu"] = (args => Task.FromResult(Mvcc.KeyIndexPutProbe.Run(args)), """
            index-put-cpu [--keys 100000] [--revisions 10] [--puts 200000] [--rounds 5] [--evict-lines N]
              The key index's CPU per put of an existing key (the writer's search, latest version and put) on one thread.
            """),
    };

    /// <summary>
    /// How long BenchmarkDotNet may take to build a benchmark class's generated out-of-process project.
    /// Its default (2 minutes) is too short here: the generated project rebuilds the three libraries
    /// and this project from source (analyzers and .proto code generation included) with no shared
    /// compiler, which took 3 min 50 s at load 30 on the 2-core machine; past the timeout the build is
    /// killed and every benchmark of the class reports NA. BenchmarkDotNet keeps the longer of two
    /// build timeouts, so <c>--buildTimeout</c> on the command line can only raise this one.
    /// </summary>
    private static readonly TimeSpan GeneratedProjectBuildTimeout = TimeSpan.FromMinutes(20);

    /// <summary>
    /// What <c>--inProcess</c> means here: every job of the run in this process, a class's own
    /// <c>[SimpleJob]</c> with its counts and strategy included. BenchmarkDotNet 0.14's own switch
    /// instead adds a second, default job in process beside the class's job, which still builds its
    /// generated project and runs out of process: the row ran twice with different statistics, and the
    /// build (no shared compiler, one node) kept the host asleep with ~2 s of CPU for up to 10 minutes at
    /// load, which looked like a hang (docs/benchmarks.md, "MVCC in-order puts, session 15" and "MVCC key
    /// index, session 25"). A mutator job is applied to every job instead of being added as one.
    /// </summary>
    private static readonly Job InProcessEverywhere = Job.Default.WithToolchain(InProcessEmitToolchain.Instance).AsMutator();

    private static bool IsInProcessSwitch(string arg) => arg is "-i" || arg.Equals("--inProcess", StringComparison.OrdinalIgnoreCase);
}
