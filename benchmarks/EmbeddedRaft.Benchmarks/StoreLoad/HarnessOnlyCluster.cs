namespace EmbeddedRaft.Benchmarks.StoreLoad;

/// <summary>
/// No system at all: every operation completes at once, synchronously, from memory (a read answers
/// the preloaded value's length, a put and a compare-and-put succeed). A row run against it costs
/// only the load generator's own client loop (drawing the key, timing, recording the latency, the
/// calls down to the system), so its CPU and bytes per operation are what to subtract from another
/// system's rows to see that system's own cost. Its reads never wait, so both read workloads measure
/// the loop of a read that completes synchronously (a serializable read); a read that suspends (a
/// linearizable one) adds the boxes of the generator's async calls it suspends in.
/// </summary>
internal sealed class HarnessOnlyCluster : IKvClusterUnderLoad
{
    public string Name => "harness only (no system)";

    public int LeaderIndex => 0;

    public TimeSpan ExternalProcessorTime => TimeSpan.Zero;

    public bool Supports(StoreLoadWorkload workload) => true;

    public ValueTask PutAsync(int member, ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> value, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask<int> GetAsync(int member, ReadOnlyMemory<byte> key, bool linearizable, CancellationToken cancellationToken) =>
        ValueTask.FromResult(StoreLoadData.ValueBytes);

    public ValueTask<bool> CompareAndPutAsync(int member, ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> expected, ReadOnlyMemory<byte> value, CancellationToken cancellationToken) =>
        ValueTask.FromResult(true);

    public ValueTask CompactAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
