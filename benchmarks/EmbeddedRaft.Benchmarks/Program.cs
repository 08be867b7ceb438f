using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Running;

namespace EmbeddedRaft.Benchmarks;

/// <summary>Entry point: <c>cluster-load ...</c> runs the whole-cluster load generator
/// (<see cref="Consensus.ClusterLoadGenerator"/>), <c>store-load ...</c> the key-value cluster load
/// generator beside etcd and DotNext (<see cref="StoreLoad.StoreLoadGenerator"/>), <c>tcp-cpu</c> the TCP
/// transport's wall and CPU time per message beside a raw socket (<see cref="Transport.TcpTransportCpuProbe"/>), <c>tcp-parts</c>
/// its per-message parts (queue, encode, decode) timed on one thread (<see cref="Transport.TcpTransportPartsProbe"/>), <c>watch-cpu</c>
/// the store writer's CPU per put with and without a watcher (<see cref="Mvcc.WatchWriterCpuProbe"/>), <c>range-cpu</c> the
/// store's CPU per single-key range on one thread, or per key index lookup with --count-only (<see cref="Mvcc.RangeCpuProbe"/>); anything else goes to BenchmarkDotNet's switcher, so
/// <c>--filter '*Wal*'</c>, <c>--list flat</c> and every other BenchmarkDotNet option work.</summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "cluster-load")
        {
            return await Consensus.ClusterLoadGenerator.RunAsync(args[1..]);
        }

        if (args.Length > 0 && args[0] == "store-load")
        {
            return await StoreLoad.StoreLoadGenerator.RunAsync(args[1..]);
        }

        if (args.Length > 0 && args[0] == "tcp-cpu")
        {
            return Transport.TcpTransportCpuProbe.Run(args[1..]);
        }

        if (args.Length > 0 && args[0] == "tcp-parts")
        {
            return Transport.TcpTransportPartsProbe.Run(args[1..]);
        }

        if (args.Length > 0 && args[0] == "watch-cpu")
        {
            return Mvcc.WatchWriterCpuProbe.Run(args[1..]);
        }

        if (args.Length > 0 && args[0] == "range-cpu")
        {
            return await Mvcc.RangeCpuProbe.RunAsync(args[1..]);
        }

        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, ManualConfig.Create(DefaultConfig.Instance).WithBuildTimeout(GeneratedProjectBuildTimeout));
        return 0;
    }

    /// <summary>
    /// How long BenchmarkDotNet may take to build a benchmark class's generated out-of-process project.
    /// Its default (2 minutes) is too short here: the generated project rebuilds the three libraries
    /// and this project from source (analyzers and .proto code generation included) with no shared
    /// compiler, which took 3 min 50 s at load 30 on the 2-core machine; past the timeout the build is
    /// killed and every benchmark of the class reports NA. BenchmarkDotNet keeps the longer of two
    /// build timeouts, so <c>--buildTimeout</c> on the command line can only raise this one.
    /// </summary>
    private static readonly TimeSpan GeneratedProjectBuildTimeout = TimeSpan.FromMinutes(20);
}
