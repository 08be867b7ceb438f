using EmbeddedRaft.Benchmarks.Consensus;

namespace EmbeddedRaft.Benchmarks.StoreLoad;

/// <summary>
/// DotNext.Net.Cluster 6.12 on the put workload: the cluster-load benchmark's harness
/// (<see cref="DotNextRaftCluster"/>: three members over its TCP transport, persistent
/// <c>WriteAheadLog</c>s flushed on every commit, a counting state machine) with each put's 1 KiB
/// value replicated as one log entry. DotNext is a Raft library, not a key-value store, so the key
/// is not part of the entry and only <see cref="StoreLoadWorkload.Put"/> runs; its
/// <c>ReplicateAsync</c> has no forwarding, so every put goes to the leader whatever member the
/// caller names.
/// </summary>
internal sealed class DotNextPutCluster : IKvClusterUnderLoad
{
    private readonly DotNextRaftCluster _cluster;

    private DotNextPutCluster(DotNextRaftCluster cluster) => _cluster = cluster;

    public string Name => "DotNext.Net.Cluster 6.12.0";

    public int LeaderIndex => 0;

    public TimeSpan ExternalProcessorTime => TimeSpan.Zero;

    public static async Task<DotNextPutCluster> StartAsync(string directory, CancellationToken cancellationToken) =>
        new(await DotNextRaftCluster.StartAsync(directory, cancellationToken));

    public bool Supports(StoreLoadWorkload workload) => workload == StoreLoadWorkload.Put;

    public ValueTask PutAsync(int member, ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> value, CancellationToken cancellationToken) =>
        _cluster.ProposeAsync(value, cancellationToken);

    public ValueTask<int> GetAsync(int member, ReadOnlyMemory<byte> key, bool linearizable, CancellationToken cancellationToken) =>
        throw new NotSupportedException("DotNext.Net.Cluster has no key-value store: puts only.");

    public ValueTask<bool> CompareAndPutAsync(int member, ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> expected, ReadOnlyMemory<byte> value, CancellationToken cancellationToken) =>
        throw new NotSupportedException("DotNext.Net.Cluster has no key-value store: puts only.");

    public ValueTask CompactAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask DisposeAsync() => _cluster.DisposeAsync();
}
