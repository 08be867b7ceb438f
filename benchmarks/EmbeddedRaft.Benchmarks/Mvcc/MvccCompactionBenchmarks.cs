using System.Buffers.Binary;
using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using EmbeddedRaft.Benchmarks.BTree;
using EmbeddedRaft.Mvcc;
using EmbeddedRaft.Storage.BTree;
using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Benchmarks.Mvcc;

/// <summary>
/// Compaction of 1,000,000 revisions (100,000 keys written 10 times each; compacting at the last
/// revision removes the 900,000 superseded ones) while one writer keeps putting, one awaited put at a
/// time. Mean is the compaction's time per revision. The writer's put latencies during the compaction
/// (p50, p99, max) beside the same writer's alone just before it go to the console and
/// /tmp/mvcc-bench-results.txt: the stall compaction causes. The raw B+tree beside it holds the same
/// 1,000,000 entries keyed by revision and deletes the 900,000 in synced commits of 1,000 (MvccStore's
/// default compaction batch) while the same writer commits one put at a time.
/// </summary>
[Config(typeof(SideBySideConfig))]
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 0, iterationCount: 3, invocationCount: 1)]
public class MvccCompactionBenchmarks
{
    private const int Revisions = 1_000_000;
    private const int Keys = 100_000;
    private const int BaselinePuts = 2_000;
    private const int WriterKeys = 200_000;
    private const int RawDeletesPerCommit = MvccStoreOptions.DefaultCompactionBatchLimit;
    private const string RawBucket = "revisions";

    private byte[] _keys = null!;
    private byte[] _value = null!;
    private string _directory = null!;
    private MvccStoreEngine? _store;
    private BTreeDatabase? _raw;
    private List<double> _baselineMs = null!;
    private int _writerPuts;

    [Params(MvccWorkload.Store, MvccWorkload.RawBTree)]
    public string Engine { get; set; } = MvccWorkload.Store;

    [GlobalSetup]
    public void CreateWorkload()
    {
        _keys = Workload.Keys(Keys + WriterKeys);
        _value = Workload.Value();
    }

    [IterationSetup]
    public void FillAndMeasureBaseline()
    {
        _directory = MvccWorkload.NewDirectory(Engine);
        int[] order = Enumerable.Range(0, Revisions).Select(i => i % Keys).ToArray();
        if (Engine == MvccWorkload.Store)
        {
            _store = MvccStoreEngine.OpenAsync(_directory).GetAwaiter().GetResult();
            _store.PutAllAsync(_keys, order, _value).GetAwaiter().GetResult();
        }
        else
        {
            _raw = BTreeDatabase.Open(PhysicalFileSystem.Instance, Path.Combine(_directory, "raw.db"), EmbeddedRaftEngine.Options);
            byte[] revision = new byte[8];
            for (int start = 0; start < Revisions; start += MvccWorkload.RawKeysPerCommit)
            {
                using Transaction tx = _raw.BeginWrite();
                Bucket bucket = tx.CreateBucketIfNotExists(RawBucket);
                for (int i = start; i < start + MvccWorkload.RawKeysPerCommit; i++)
                {
                    BinaryPrimitives.WriteInt64BigEndian(revision, i + 1);
                    bucket.Put(revision, _value);
                }

                tx.Commit();
            }
        }

        _baselineMs = [];
        for (int i = 0; i < BaselinePuts; i++)
        {
            _baselineMs.Add(TimedPutAsync().GetAwaiter().GetResult());
        }
    }

    [IterationCleanup]
    public void Close()
    {
        _store?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _raw?.Dispose();
        _store = null;
        _raw = null;
        Directory.Delete(_directory, recursive: true);
    }

    [Benchmark(OperationsPerInvoke = Revisions)]
    public async Task CompactionWithAWriter()
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

        var compaction = Stopwatch.StartNew();
        await CompactAsync().ConfigureAwait(false);
        compaction.Stop();
        await stop.CancelAsync().ConfigureAwait(false);
        await writer.ConfigureAwait(false);

        _baselineMs.Sort();
        during.Sort();
        MvccWorkload.AppendResult(
            $"{Engine}: compaction of {Revisions:N0} revisions took {compaction.Elapsed.TotalSeconds:F2} s; writer put latency alone p50 {MvccWorkload.Quantile(_baselineMs, 0.5):F2} ms p99 {MvccWorkload.Quantile(_baselineMs, 0.99):F2} ms max {_baselineMs[^1]:F2} ms ({_baselineMs.Count} puts); during compaction p50 {MvccWorkload.Quantile(during, 0.5):F2} ms p99 {MvccWorkload.Quantile(during, 0.99):F2} ms max {(during.Count > 0 ? during[^1] : double.NaN):F2} ms ({during.Count} puts)");
    }

    private async Task CompactAsync()
    {
        if (_store is not null)
        {
            // physical: returns once the superseded revisions are gone from the B+tree, not when scheduled.
            await _store.Store.CompactAsync(_store.Store.Revision, physical: true).ConfigureAwait(false);
            return;
        }

        byte[] revision = new byte[8];
        for (int start = 0; start < Revisions - Keys; start += RawDeletesPerCommit)
        {
            await Task.Yield();
            using Transaction tx = await _raw!.BeginWriteAsync().ConfigureAwait(false);
            Bucket bucket = tx.OpenBucket(RawBucket)!;
            for (int i = start; i < start + RawDeletesPerCommit; i++)
            {
                BinaryPrimitives.WriteInt64BigEndian(revision, i + 1);
                bucket.Delete(revision);
            }

            tx.Commit();
        }
    }

    /// <summary>One awaited put of a new key; returns its latency in milliseconds.</summary>
    private async Task<double> TimedPutAsync()
    {
        // The writer's keys are not among the compacted ones: its puts only contend with the compaction.
        ReadOnlyMemory<byte> key = MvccWorkload.Key(_keys, Keys + (Interlocked.Increment(ref _writerPuts) % WriterKeys));
        long start = Stopwatch.GetTimestamp();
        if (_store is not null)
        {
            await _store.Store.PutAsync(new PutRequest { Key = key, Value = _value }).ConfigureAwait(false);
        }
        else
        {
            using Transaction tx = await _raw!.BeginWriteAsync().ConfigureAwait(false);
            tx.CreateBucketIfNotExists("writer").Put(key.Span, _value);
            tx.Commit();
        }

        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }
}
