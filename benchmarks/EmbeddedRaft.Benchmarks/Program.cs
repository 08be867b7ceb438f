using BenchmarkDotNet.Running;

namespace EmbeddedRaft.Benchmarks;

/// <summary>Entry point: <c>cluster-load ...</c> runs the whole-cluster load generator
/// (<see cref="Consensus.ClusterLoadGenerator"/>), <c>store-load ...</c> the key-value cluster load
/// generator beside etcd and DotNext (<see cref="StoreLoad.StoreLoadGenerator"/>), <c>tcp-cpu</c> the TCP
/// transport's wall and CPU time per message beside a raw socket (<see cref="Transport.TcpTransportCpuProbe"/>), <c>watch-cpu</c>
/// the store writer's CPU per put with and without a watcher (<see cref="Mvcc.WatchWriterCpuProbe"/>); anything else goes to BenchmarkDotNet's switcher, so
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

        if (args.Length > 0 && args[0] == "watch-cpu")
        {
            return Mvcc.WatchWriterCpuProbe.Run(args[1..]);
        }

        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
    }
}
