using EmbeddedRaft.Consensus.Host;

namespace EmbeddedRaft.Benchmarks.Consensus;

/// <summary>The benchmark's application: counts applied commands and answers each with the running count. In memory; its snapshot is the count.</summary>
internal sealed class CountingStateMachine : IStateMachine<long>
{
    private long _applied;

    public long AppliedCommands => Interlocked.Read(ref _applied);

    public ulong AppliedIndex { get; private set; }

    public ValueTask<IReadOnlyList<long>> ApplyAsync(CommittedBatch batch, CancellationToken cancellationToken)
    {
        var results = new long[batch.Commands.Count];
        for (int i = 0; i < results.Length; i++)
        {
            results[i] = Interlocked.Increment(ref _applied);
        }

        AppliedIndex = batch.LastIndex;
        return ValueTask.FromResult<IReadOnlyList<long>>(results);
    }

    public IStateMachineSnapshot CreateSnapshot() => new CountSnapshot(AppliedIndex, AppliedCommands);

    public async ValueTask RestoreAsync(ulong index, Stream data, CancellationToken cancellationToken)
    {
        var bytes = new byte[sizeof(long)];
        await data.ReadExactlyAsync(bytes, cancellationToken);
        Interlocked.Exchange(ref _applied, BitConverter.ToInt64(bytes));
        AppliedIndex = index;
    }

    private sealed class CountSnapshot(ulong index, long count) : IStateMachineSnapshot
    {
        public ulong Index { get; } = index;

        public ValueTask WriteToAsync(Stream destination, CancellationToken cancellationToken) =>
            destination.WriteAsync(BitConverter.GetBytes(count), cancellationToken);

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
