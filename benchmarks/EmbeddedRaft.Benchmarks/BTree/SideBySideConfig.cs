using System.Collections.Immutable;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Order;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace EmbeddedRaft.Benchmarks.BTree;

/// <summary>
/// Runs the engines back to back for each benchmark (ours, then LMDB, then the next benchmark),
/// instead of all of ours and then all of LMDB's, so that each pair is measured minutes apart at
/// most on this shared, noisy machine.
/// </summary>
public sealed class SideBySideConfig : ManualConfig
{
    public SideBySideConfig() => WithOrderer(new EngineInterleavingOrderer());

    private sealed class EngineInterleavingOrderer : IOrderer
    {
        private readonly DefaultOrderer _inner = new();

        public bool SeparateLogicalGroups => _inner.SeparateLogicalGroups;

        public IEnumerable<BenchmarkCase> GetExecutionOrder(ImmutableArray<BenchmarkCase> benchmarksCase, IEnumerable<BenchmarkLogicalGroupRule>? order = null) =>
            benchmarksCase
                .OrderBy(c => c.Descriptor.WorkloadMethod.MetadataToken)
                .ThenBy(c => c.Parameters.DisplayInfo, StringComparer.Ordinal);

        public IEnumerable<BenchmarkCase> GetSummaryOrder(ImmutableArray<BenchmarkCase> benchmarksCases, Summary summary) =>
            GetExecutionOrder(benchmarksCases);

        public string? GetHighlightGroupKey(BenchmarkCase benchmarkCase) => _inner.GetHighlightGroupKey(benchmarkCase);

        public string GetLogicalGroupKey(ImmutableArray<BenchmarkCase> allBenchmarksCases, BenchmarkCase benchmarkCase) =>
            _inner.GetLogicalGroupKey(allBenchmarksCases, benchmarkCase);

        public IEnumerable<IGrouping<string, BenchmarkCase>> GetLogicalGroupOrder(IEnumerable<IGrouping<string, BenchmarkCase>> logicalGroups, IEnumerable<BenchmarkLogicalGroupRule>? order = null) =>
            _inner.GetLogicalGroupOrder(logicalGroups, order);
    }
}
