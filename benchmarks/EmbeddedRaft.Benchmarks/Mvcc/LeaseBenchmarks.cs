using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using EmbeddedRaft.Mvcc;

namespace EmbeddedRaft.Benchmarks.Mvcc;

/// <summary>
/// Lease grant and keep-alive rates of a standalone, synced MvccStore (the configuration of the
/// other MvccStore suites). Grants are writes: they go through the writer and are durable when
/// answered, so many in flight share a commit (group commit) and one at a time pays an fsync each.
/// A keep-alive writes nothing (as etcd's): it restarts the TTL in memory, under the lessor's lock.
/// </summary>
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 1, iterationCount: 5, invocationCount: 1)]
public class LeaseBenchmarks
{
    private const int GrantsInFlight = 10_000;
    private const int Grants = 10_000;
    private const int SequentialGrants = 500;
    private const int Leases = 10_000;
    private const int KeepAlives = 1_000_000;

    private string _directory = null!;
    private MvccStore _store = null!;
    private long[] _leases = null!;

    [IterationSetup]
    public void Open()
    {
        _directory = MvccWorkload.NewDirectory("lease");
        _store = MvccStore.Open(_directory, MvccStoreEngine.Options);
        _leases = new long[Leases];
        MvccWorkload.RunWindowedAsync(Leases, GrantsInFlight, async i => _leases[i] = (await _store.LeaseGrantAsync(3600).ConfigureAwait(false)).Id).GetAwaiter().GetResult();
    }

    [IterationCleanup]
    public void Close()
    {
        _store.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    /// <summary>Grants with up to 10,000 in flight (many clients). Per grant.</summary>
    [Benchmark(OperationsPerInvoke = Grants)]
    public Task GrantsManyInFlight() =>
        MvccWorkload.RunWindowedAsync(Grants, GrantsInFlight, _ => _store.LeaseGrantAsync(60).AsTask());

    /// <summary>Grants one after another (one client awaiting each): one synced commit per grant. Per grant.</summary>
    [Benchmark(OperationsPerInvoke = SequentialGrants)]
    public async Task GrantsOneAtATime()
    {
        for (int i = 0; i < SequentialGrants; i++)
        {
            await _store.LeaseGrantAsync(60).ConfigureAwait(false);
        }
    }

    /// <summary>Keep-alives from one thread, round robin over 10,000 leases. Per keep-alive.</summary>
    [Benchmark(OperationsPerInvoke = KeepAlives)]
    public async Task<long> KeepAlivesOneThread()
    {
        // Each completes synchronously; awaiting it costs no allocation.
        long ttl = 0;
        for (int i = 0; i < KeepAlives; i++)
        {
            ttl += (await _store.LeaseKeepAliveAsync(_leases[i % Leases]).ConfigureAwait(false)).TtlSeconds;
        }

        return ttl;
    }
}
