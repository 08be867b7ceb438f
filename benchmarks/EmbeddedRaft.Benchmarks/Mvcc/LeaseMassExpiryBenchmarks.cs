using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using EmbeddedRaft.Benchmarks.BTree;
using EmbeddedRaft.Mvcc;

namespace EmbeddedRaft.Benchmarks.Mvcc;

/// <summary>
/// 100,000 leases, each holding one key, expiring in the same instant (the clock jumps past all
/// their TTLs, as after a long pause), while one writer keeps putting, one awaited put at a time.
/// Mean is the time from the jump until every lease is revoked (and its key deleted), per lease; it
/// includes the wait for the next expiry check (up to 500 ms). The writer's put latencies during the
/// revocations (p50, p99, max) beside the same writer's alone just before go to the console and
/// /tmp/mvcc-bench-results.txt: the stall a mass expiry causes. Two rate limits: 10,000 revocations
/// per second (5,000 per 500 ms check) and 1,000,000 per second (all 100,000 queued in one round,
/// which is what the limit exists to prevent).
/// </summary>
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 0, iterationCount: 3, invocationCount: 1)]
public class LeaseMassExpiryBenchmarks
{
    private const int Leases = 100_000;
    private const int BaselinePuts = 1_000;
    private const int WriterKeys = 100_000;

    private byte[] _keys = null!;
    private byte[] _value = null!;
    private string _directory = null!;
    private JumpingTimeProvider _clock = null!;
    private MvccStore _store = null!;
    private List<double> _baselineMs = null!;
    private int _writerPuts;

    [Params(10_000, 1_000_000)]
    public int MaxRevokesPerSecond { get; set; }

    [GlobalSetup]
    public void CreateWorkload()
    {
        _keys = Workload.Keys(Leases + WriterKeys);
        _value = Workload.Value();
    }

    [IterationSetup]
    public void GrantAndAttach()
    {
        _directory = MvccWorkload.NewDirectory("lease-expiry");
        _clock = new JumpingTimeProvider();
        var options = MvccStoreEngine.Options with { Leases = new LeaseOptions { TimeProvider = _clock, MaxRevokesPerSecond = MaxRevokesPerSecond } };
        _store = MvccStore.Open(_directory, options);
        var leases = new long[Leases];
        MvccWorkload.RunWindowedAsync(Leases, MvccWorkload.WritesInFlight, async i => leases[i] = (await _store.LeaseGrantAsync(60).ConfigureAwait(false)).Id).GetAwaiter().GetResult();
        MvccWorkload.RunWindowedAsync(Leases, MvccWorkload.WritesInFlight, i =>
            _store.PutAsync(new PutRequest { Key = MvccWorkload.Key(_keys, i), Value = _value, Lease = leases[i] }).AsTask()).GetAwaiter().GetResult();
        _baselineMs = [];
        for (int i = 0; i < BaselinePuts; i++)
        {
            _baselineMs.Add(TimedPutAsync().GetAwaiter().GetResult());
        }
    }

    [IterationCleanup]
    public void Close()
    {
        _store.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    [Benchmark(OperationsPerInvoke = Leases)]
    public async Task MassExpiryWithAWriter()
    {
        using var stop = new CancellationTokenSource();
        var during = new List<double>();
        Task writer = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                during.Add(await TimedPutAsync().ConfigureAwait(false));
            }
        });

        var revoking = Stopwatch.StartNew();
        _clock.Jump(TimeSpan.FromSeconds(120));
        while (_store.LeaseCount > 0)
        {
            await Task.Delay(1).ConfigureAwait(false);
        }

        revoking.Stop();
        await stop.CancelAsync().ConfigureAwait(false);
        await writer.ConfigureAwait(false);
        for (int i = 0; i < Leases; i += 997)
        {
            if (_store.Range(new RangeRequest { Key = MvccWorkload.Key(_keys, i) }).Count != 0)
            {
                throw new InvalidOperationException($"The key of revoked lease {i} is still there.");
            }
        }

        _baselineMs.Sort();
        during.Sort();
        MvccWorkload.AppendResult(
            $"Leases: {Leases:N0} expiring at once, MaxRevokesPerSecond {MaxRevokesPerSecond:N0}: all revoked {revoking.Elapsed.TotalSeconds:F2} s after the jump; writer put latency alone p50 {MvccWorkload.Quantile(_baselineMs, 0.5):F2} ms p99 {MvccWorkload.Quantile(_baselineMs, 0.99):F2} ms max {_baselineMs[^1]:F2} ms ({_baselineMs.Count} puts); during the revocations p50 {MvccWorkload.Quantile(during, 0.5):F2} ms p99 {MvccWorkload.Quantile(during, 0.99):F2} ms max {(during.Count > 0 ? during[^1] : double.NaN):F2} ms ({during.Count} puts)");
    }

    /// <summary>One awaited put of a key no lease holds; returns its latency in milliseconds.</summary>
    private async Task<double> TimedPutAsync()
    {
        ReadOnlyMemory<byte> key = MvccWorkload.Key(_keys, Leases + (Interlocked.Increment(ref _writerPuts) % WriterKeys));
        long start = Stopwatch.GetTimestamp();
        await _store.PutAsync(new PutRequest { Key = key, Value = _value }).ConfigureAwait(false);
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }
}
