using BenchmarkDotNet.Running;

namespace EmbeddedRaft.Benchmarks;

/// <summary>Entry point: <c>cluster-load ...</c> runs the whole-cluster load generator
/// (<see cref="Consensus.ClusterLoadGenerator"/>); anything else goes to BenchmarkDotNet's switcher, so
/// <c>--filter '*Wal*'</c>, <c>--list flat</c> and every other BenchmarkDotNet option work.</summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "cluster-load")
        {
            return await Consensus.ClusterLoadGenerator.RunAsync(args[1..]);
        }

        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
    }
}
