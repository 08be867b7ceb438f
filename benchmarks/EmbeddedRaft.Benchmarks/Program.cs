using BenchmarkDotNet.Running;

namespace EmbeddedRaft.Benchmarks;

/// <summary>Entry point: hands the command line to BenchmarkDotNet's switcher, so
/// <c>--filter '*Wal*'</c>, <c>--list flat</c> and every other BenchmarkDotNet option work.</summary>
public static class Program
{
    public static void Main(string[] args) =>
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
