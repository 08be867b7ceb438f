namespace EmbeddedRaft.Benchmarks.StoreLoad;

/// <summary>
/// A running three-member key-value cluster the store-load generator drives. Every operation names
/// the member (0, 1 or 2) it is sent to; a member that is not the leader forwards writes as its
/// system does. Operations throw on any failure (counted by the caller as failed).
/// </summary>
internal interface IKvClusterUnderLoad : IAsyncDisposable
{
    /// <summary>Shown in the results.</summary>
    string Name { get; }

    /// <summary>The member (0-2) that leads now, so the load generator can send a lone caller to it.</summary>
    int LeaderIndex { get; }

    /// <summary>CPU time spent outside this process by the system (etcd's processes), zero for in-process systems.</summary>
    TimeSpan ExternalProcessorTime { get; }

    /// <summary>False for workloads the system cannot run (DotNext has no key-value store: puts only).</summary>
    bool Supports(StoreLoadWorkload workload);

    /// <summary>Puts <paramref name="value"/> at <paramref name="key"/> and returns once the put is acknowledged.</summary>
    ValueTask PutAsync(int member, ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> value, CancellationToken cancellationToken);

    /// <summary>Reads <paramref name="key"/> and returns its value's length (-1 when absent).</summary>
    ValueTask<int> GetAsync(int member, ReadOnlyMemory<byte> key, bool linearizable, CancellationToken cancellationToken);

    /// <summary>If <paramref name="key"/>'s value equals <paramref name="expected"/>, puts <paramref name="value"/>; returns whether the compare held.</summary>
    ValueTask<bool> CompareAndPutAsync(int member, ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> expected, ReadOnlyMemory<byte> value, CancellationToken cancellationToken);

    /// <summary>Compacts every revision below the current one and waits until it is done, so that history does not pile up from row to row.</summary>
    ValueTask CompactAsync(CancellationToken cancellationToken);
}
