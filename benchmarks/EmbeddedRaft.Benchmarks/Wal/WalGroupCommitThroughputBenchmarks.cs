using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using EmbeddedRaft.Storage.IO;
using EmbeddedRaft.Storage.Wal;

namespace EmbeddedRaft.Benchmarks.Wal;

/// <summary>
/// Target (b): the disk's sequential bandwidth with 1 MiB write + fdatasync blocks against the
/// WAL's group-commit throughput with 64 concurrent appenders of synced 1 KiB records. Each
/// invocation moves 128 MiB of payload; divide to get MB/s.
/// </summary>
/// <remarks>
/// How many appends each appender keeps in flight bounds what a flush can carry (Little's law), so
/// the WAL runs at three depths, each beside the raw row that is its ceiling on this disk:
/// one in flight (64 KiB waiting per flush at most: the raw 64 KiB row); 16 in flight (1 MiB
/// outstanding, as much as one raw 1 MiB block, but split between the group being flushed and the
/// group filling behind it, so about 512 KiB per flush: the raw 512 KiB row); 64 in flight (4 MiB
/// outstanding: enough that the log, not the appenders, sets the pace). Appenders await the
/// log's pooled <see cref="ValueTask{TResult}"/>s directly, as a caller that cares about
/// allocation would; no Task is allocated per append.
/// </remarks>
[MemoryDiagnoser]
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 3, iterationCount: 20)]
[MedianColumn]
public class WalGroupCommitThroughputBenchmarks
{
    public const int Appenders = 64;
    public const int RecordBytes = 1024;
    public const int BytesPerInvocation = 128 * 1024 * 1024;
    private const int RecordsPerAppender = BytesPerInvocation / RecordBytes / Appenders;

    private readonly byte[] _block = new byte[1024 * 1024];
    private readonly byte[] _payload = new byte[RecordBytes];
    private string _directory = "";
    private IStorageFile? _raw;
    private WriteAheadLog _wal = null!;
    private long _index;

    [GlobalSetup]
    public void Setup()
    {
        new Random(1).NextBytes(_block);
        new Random(2).NextBytes(_payload);
        _directory = BenchmarkDirectory.Create("throughput");
        _wal = WriteAheadLog.Open(PhysicalFileSystem.Instance, Path.Combine(_directory, "wal"));
    }

    /// <summary>
    /// Each raw iteration writes into a fresh file preallocated to exactly what it will write, as
    /// each WAL segment is: space allocated but never written (an extent conversion at fdatasync),
    /// taken from blocks the file system has just freed, as the WAL's new segments take the blocks
    /// of the segments released after each iteration. (One big file written front to back instead
    /// measured the virtual disk's first touch of never-used blocks: 3-4x slower on this machine,
    /// and a baseline the WAL never faces.)
    /// </summary>
    [IterationSetup(Targets = [nameof(RawSequential1MiBWrites), nameof(RawSequential64KiBWrites), nameof(RawSequential512KiBWrites)])]
    public void CreateFreshRawFile()
    {
        _raw?.Dispose();
        string path = Path.Combine(_directory, "raw.bin");
        if (PhysicalFileSystem.Instance.FileExists(path))
        {
            PhysicalFileSystem.Instance.DeleteFile(path);
        }

        _raw = BenchmarkDirectory.CreateRawFile(_directory, BytesPerInvocation);
    }

    [IterationCleanup(Targets = [nameof(Wal64SyncedAppenders), nameof(Wal64AppendersWith16InFlight), nameof(Wal64AppendersWith64InFlight)])]
    public void ReleaseOldSegments() => _wal.ReleaseBefore(_wal.LastIndex);

    [GlobalCleanup]
    public void Cleanup()
    {
        _wal.Dispose();
        _raw?.Dispose();
        BenchmarkDirectory.Delete(_directory);
    }

    [Benchmark(Baseline = true, Description = "raw 128 x (1 MiB write + fdatasync)")]
    public void RawSequential1MiBWrites() => WriteRawBlocks(1024 * 1024);

    /// <summary>The ceiling for 64 appenders with one synced 1 KiB record each in flight: at most 64 KiB waits per flush.</summary>
    [Benchmark(Description = "raw 2048 x (64 KiB write + fdatasync)")]
    public void RawSequential64KiBWrites() => WriteRawBlocks(64 * 1024);

    /// <summary>The ceiling for a two-stage pipeline with 1 MiB outstanding: one 512 KiB group flushes while the next fills.</summary>
    [Benchmark(Description = "raw 256 x (512 KiB write + fdatasync)")]
    public void RawSequential512KiBWrites() => WriteRawBlocks(512 * 1024);

    /// <summary>Fills this iteration's fresh file front to back (one invocation per iteration).</summary>
    private void WriteRawBlocks(int blockBytes)
    {
        var block = _block.AsSpan(0, blockBytes);
        for (long offset = 0; offset < BytesPerInvocation; offset += blockBytes)
        {
            _raw!.Write(offset, block);
            _raw.Flush();
        }
    }

    [Benchmark(Description = "WAL 64 appenders x synced 1 KiB")]
    public Task Wal64SyncedAppenders() => RunAppendersAsync(inFlightPerAppender: 1);

    [Benchmark(Description = "WAL 64 appenders x 16 in flight")]
    public Task Wal64AppendersWith16InFlight() => RunAppendersAsync(inFlightPerAppender: 16);

    [Benchmark(Description = "WAL 64 appenders x 64 in flight")]
    public Task Wal64AppendersWith64InFlight() => RunAppendersAsync(inFlightPerAppender: 64);

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
        var inFlight = new Queue<ValueTask<WalPosition>>(inFlightPerAppender);
        for (int r = 0; r < RecordsPerAppender; r++)
        {
            if (inFlight.Count == inFlightPerAppender)
            {
                await inFlight.Dequeue();
            }

            // Each pooled ValueTask is kept, then awaited exactly once, in append order.
#pragma warning disable CA2012
            inFlight.Enqueue(_wal.AppendAsync(1, _payload, (ulong)Interlocked.Increment(ref _index)));
#pragma warning restore CA2012
        }

        while (inFlight.Count > 0)
        {
            await inFlight.Dequeue();
        }
    }
}
