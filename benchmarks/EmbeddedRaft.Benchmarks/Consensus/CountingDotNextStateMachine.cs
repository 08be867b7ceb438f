using DotNext.Net.Cluster.Consensus.Raft.StateMachine;

namespace EmbeddedRaft.Benchmarks.Consensus;

/// <summary>DotNext's side of the counting state machine: counts applied commands, keeps no snapshot.</summary>
internal sealed class CountingDotNextStateMachine : IStateMachine
{
    private long _applied;

    public long AppliedCommands => Interlocked.Read(ref _applied);

    public int Version => 1;

    public ISnapshot? Snapshot => null;

    public ValueTask<long> ApplyAsync(LogEntry entry, CancellationToken token)
    {
        if (!entry.IsConfiguration && entry.Length is > 0)
        {
            Interlocked.Increment(ref _applied);
        }

        return ValueTask.FromResult(entry.Index);
    }

    public IStateMachine CreateNoOp(long snapshotThreshold) => new CountingDotNextStateMachine();

    public ValueTask ReclaimGarbageAsync(long watermark, CancellationToken token) => ValueTask.CompletedTask;
}
