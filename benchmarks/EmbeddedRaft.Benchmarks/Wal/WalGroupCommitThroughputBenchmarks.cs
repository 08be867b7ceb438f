using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using EmbeddedRaft.Storage.IO;
using EmbeddedRaft.Storage.Wal;

namespace EmbeddedRaft.Benchmarks.Wal;

/// <summary>
/// Target (b): the disk's sequential bandwidth with 1 MiB write + fdatasync blocks against the
/// WAL's group-commit throughput with 64 concurrent appenders of synced 1 KiB records. Each
/// invocation moves 64 MiB of payload; divide to get MB/s. A third case lets every appender keep
/// 16 appends in flight, to show what the log sustains when more than 64 KiB is waiting per flush.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 2, iterationCount: 10)]
[MedianColumn]
public class WalGroupCommitThroughputBenchmarks
{
    public const int Appenders = 64;
    public const int RecordBytes = 1024;
    public const int BytesPerInvocation = 64 * 1024 * 1024;
    private const int RecordsPerAppender = BytesPerInvocation / RecordBytes / Appenders;
    private const long RawFileBytes = 2L << 30;

    private readonly byte[] _block = new byte[1024 * 1024];
    private readonly byte[] _payload = new byte[RecordBytes];
    private string _directory = "";
    private IStorageFile _raw = null!;
    private long _rawOffset;
    private WriteAheadLog _wal = null!;
    private long _index;

    [GlobalSetup]
    public void Setup()
    {
        new Random(1).NextBytes(_block);
        new Random(2).NextBytes(_payload);
        _directory = BenchmarkDirectory.Create("throughput");
        _raw = BenchmarkDirectory.CreateRawFile(_directory, RawFileBytes);
        _wal = WriteAheadLog.Open(PhysicalFileSystem.Instance, Path.Combine(_directory, "wal"));
    }

    [IterationCleanup]
    public void ReleaseOldSegments() => _wal.ReleaseBefore(_wal.LastIndex);

    [GlobalCleanup]
    public void Cleanup()
    {
        _wal.Dispose();
        _raw.Dispose();
        BenchmarkDirectory.Delete(_directory);
    }

    [Benchmark(Baseline = true, Description = "raw 64 x (1 MiB write + fdatasync)")]
    public void RawSequential1MiBWrites()
    {
        for (int i = 0; i < BytesPerInvocation / _block.Length; i++)
        {
            _raw.Write(_rawOffset, _block);
            _raw.Flush();
            _rawOffset = (_rawOffset + _block.Length) % RawFileBytes;
        }
    }

    /// <summary>The ceiling for 64 appenders with one synced 1 KiB record each in flight: at most 64 KiB waits per flush.</summary>
    [Benchmark(Description = "raw 1024 x (64 KiB write + fdatasync)")]
    public void RawSequential64KiBWrites()
    {
        var block = _block.AsSpan(0, 64 * 1024);
        for (int i = 0; i < BytesPerInvocation / block.Length; i++)
        {
            _raw.Write(_rawOffset, block);
            _raw.Flush();
            _rawOffset = (_rawOffset + block.Length) % RawFileBytes;
        }
    }

    [Benchmark(Description = "WAL 64 appenders x synced 1 KiB")]
    public Task Wal64SyncedAppenders() => RunAppendersAsync(inFlightPerAppender: 1);

    [Benchmark(Description = "WAL 64 appenders x 16 in flight")]
    public Task Wal64AppendersWith16InFlight() => RunAppendersAsync(inFlightPerAppender: 16);

    private Task RunAppendersAsync(int inFlightPerAppender)
    {
        var appenders = new Task[Appenders];
        for (int a = 0; a < Appenders; a++)
        {
            appenders[a] = inFlightPerAppender == 1 ? Task.Run(AppendOneAtATimeAsync) : Task.Run(() => AppendPipelinedAsync(inFlightPerAppender));
        }

        return Task.WhenAll(appenders);
    }

    private async Task AppendOneAtATimeAsync()
    {
        for (int r = 0; r < RecordsPerAppender; r++)
        {
            await _wal.AppendAsync(1, _payload, (ulong)Interlocked.Increment(ref _index));
        }
    }

    private async Task AppendPipelinedAsync(int inFlightPerAppender)
    {
        var inFlight = new Queue<Task<WalPosition>>(inFlightPerAppender);
        for (int r = 0; r < RecordsPerAppender; r++)
        {
            if (inFlight.Count == inFlightPerAppender)
            {
                await inFlight.Dequeue();
            }

            inFlight.Enqueue(_wal.AppendAsync(1, _payload, (ulong)Interlocked.Increment(ref _index)).AsTask());
        }

        while (inFlight.Count > 0)
        {
            await inFlight.Dequeue();
        }
    }
}
