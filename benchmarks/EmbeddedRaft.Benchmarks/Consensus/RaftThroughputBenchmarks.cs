using BenchmarkDotNet.Attributes;

namespace EmbeddedRaft.Benchmarks.Consensus;

/// <summary>
/// Commit throughput of the Raft core alone: a 3-node cluster over an in-memory network with no
/// IO. Each operation is one proposal of 128 bytes; an invocation proposes
/// <see cref="ProposalsPerInvoke"/> of them in batches of <see cref="BatchSize"/> and drives the
/// cluster until every node has applied them all. Mean time per operation is the inverse of
/// proposals per second; "Allocated" is bytes allocated per committed proposal (all nodes).
/// </summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 10)]
public class RaftThroughputBenchmarks
{
    private const int ProposalsPerInvoke = 100_000;

    private InMemoryRaftCluster _cluster = null!;
    private ReadOnlyMemory<byte>[] _batch = [];

    /// <summary>Proposals per <c>ProposeBatch</c> call (or consecutive <c>Propose</c> calls) before the Ready is handled.</summary>
    [Params(100, 1000)]
    public int BatchSize { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _cluster = new InMemoryRaftCluster(3);
        var payload = new byte[128];
        new Random(1).NextBytes(payload);
        _batch = Enumerable.Repeat((ReadOnlyMemory<byte>)payload, BatchSize).ToArray();
    }

    /// <summary>One <c>ProposeBatch</c> call per batch: one message and one append for the whole batch.</summary>
    [Benchmark(OperationsPerInvoke = ProposalsPerInvoke)]
    public void ProposeBatch()
    {
        var target = _cluster.MinApplied + ProposalsPerInvoke;
        for (var proposed = 0; proposed < ProposalsPerInvoke; proposed += BatchSize)
        {
            _cluster.Leader.ProposeBatch(_batch);
            _cluster.Pump();
        }

        Finish(target);
    }

    /// <summary><see cref="BatchSize"/> consecutive single <c>Propose</c> calls, then one Ready for all of them.</summary>
    [Benchmark(OperationsPerInvoke = ProposalsPerInvoke)]
    public void ConsecutivePropose()
    {
        var target = _cluster.MinApplied + ProposalsPerInvoke;
        for (var proposed = 0; proposed < ProposalsPerInvoke; proposed += BatchSize)
        {
            for (var i = 0; i < _batch.Length; i++)
            {
                _cluster.Leader.Propose(_batch[i]);
            }

            _cluster.Pump();
        }

        Finish(target);
    }

    private void Finish(ulong target)
    {
        if (_cluster.MinApplied < target)
        {
            throw new InvalidOperationException($"Only {_cluster.MinApplied} of {target} entries applied on every node.");
        }

        _cluster.Compact();
    }
}
