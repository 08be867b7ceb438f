using EmbeddedRaft.Storage.IO;
using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Storage.Tests.Wal;

/// <summary>
/// A small write carries zeros up to 64 KiB past its last block, in the same write, so the flushes
/// after it overwrite blocks already written (no unwritten-extent conversion per flush); the zeros
/// never cover a record, never reach the room kept for the sync mark and the trailer, and a log
/// reopened after them reads exactly what was appended.
/// </summary>
public sealed class WalZerosAheadTests
{
    private const int ZerosAheadBytes = 64 * 1024;
    private const int BlockBytes = 4096;

    [Test]
    public async Task ASmallSyncedAppendCarriesZerosToSixtyFourKibPastItsBlockInItsOwnWrite()
    {
        var (fs, writes) = RecordingFileSystem(80);
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, LogOptions(segmentSizeBytes: 1024 * 1024));
        await log.AppendAsync(1, Filled(100, 0x11), 1);
        await log.AppendAsync(1, Filled(100, 0x22), 2);

        var segment = SegmentWrites(writes, log.SegmentPaths[^1]);
        Assert.That(segment, Has.Count.EqualTo(2), "one write per synced append after the header");
        var (first, second) = (segment[0], segment[1]);
        long firstRecordEnd = second.Offset; // the second record starts where the first ends
        Assert.That(first.Offset + first.Length, Is.EqualTo(AlignUp(firstRecordEnd) + ZerosAheadBytes), "the first write ran to 64 KiB past its record's block");
        Assert.That(second.Length, Is.LessThan(BlockBytes), "the second record landed in written blocks: no zeros with it");
        Assert.That(ReadBytes(fs, log.SegmentPaths[^1], second.Offset + second.Length, first.Offset + first.Length - (second.Offset + second.Length)).All(b => b == 0),
            Is.True, "after the records, the written blocks hold zeros");
    }

    [Test]
    public async Task ZerosAreWrittenAgainOnlyWhenTheRecordsReachTheEndOfThePreviousOnes()
    {
        var (fs, writes) = RecordingFileSystem(81);
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, LogOptions(segmentSizeBytes: 1024 * 1024));
        for (ulong i = 1; i <= 300; i++)
        {
            await log.AppendAsync(1, Filled(900, 0x33), i);
        }

        var segment = SegmentWrites(writes, log.SegmentPaths[^1]);
        var withZeros = segment.Where(w => w.Length > BlockBytes).ToList();
        // 300 records of ~0.9 KiB are ~280 KiB: a write with zeros every 64 KiB or so.
        Assert.That(withZeros, Has.Count.InRange(4, 6), "one write with zeros per 64 KiB of records");
        long writtenEnd = segment[0].Offset;
        foreach (var write in segment)
        {
            bool carriesZeros = write.Length > BlockBytes;
            Assert.That(write.Offset, Is.LessThanOrEqualTo(writtenEnd), "every write starts inside what was written");
            if (carriesZeros)
            {
                Assert.That(write.Offset + write.Length, Is.GreaterThan(writtenEnd), "zeros only extend what was written");
                Assert.That((write.Offset + write.Length) % BlockBytes, Is.Zero, "zeros end on a block boundary");
            }
            else
            {
                // A record written without zeros may run past the zeros by its own length only when
                // it crosses their end; the next small write then carries zeros again.
                Assert.That(write.Offset, Is.LessThan(writtenEnd), "a write without zeros starts in written blocks");
            }

            writtenEnd = Math.Max(writtenEnd, write.Offset + write.Length);
        }

        var records = WalTestKit.ReadAll(log);
        Assert.That(records.Select(r => r.Index), Is.EqualTo(Enumerable.Range(1, 300).Select(i => (ulong)i)));
    }

    [Test]
    public async Task RunsOfSeveralBlocksGetZerosOnlyEverySixteenRunsSoTheirBytesStayAboutABlockPerRun()
    {
        var (fs, writes) = RecordingFileSystem(85);
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, LogOptions(segmentSizeBytes: 4 * 1024 * 1024, maxRecordSizeBytes: 16 * 1024));
        for (ulong i = 1; i <= 60; i++)
        {
            await log.AppendAsync(1, Filled(8000, 0x77), i);
        }

        var segment = SegmentWrites(writes, log.SegmentPaths[^1]);
        Assert.That(segment, Has.Count.EqualTo(60), "one run per synced append");
        var withZeros = segment.Select((w, run) => (Write: w, Run: run)).Where(x => x.Write.Length > 16 * 1024).Select(x => x.Run).ToList();
        Assert.That(withZeros, Is.EqualTo(new[] { 0, 16, 32, 48 }), "zeros with the first run, then with every sixteenth: 8 KiB runs pass 64 KiB of zeros in 8");
        long zeroBytes = withZeros.Sum(run => segment[run].Length) - withZeros.Sum(run => segment[run + 1].Offset - segment[run].Offset);
        Assert.That(zeroBytes, Is.LessThanOrEqualTo(60 * (BlockBytes + 1024)), "about a block of zeros per run at most");
        var records = WalTestKit.ReadAll(log);
        Assert.That(records.Select(r => r.Index), Is.EqualTo(Enumerable.Range(1, 60).Select(i => (ulong)i)));
    }

    [Test]
    public async Task ZerosNeverReachTheRoomKeptForTheSyncMarkAndTheTrailer()
    {
        const long SegmentSizeBytes = 9 * 512;
        var (fs, writes) = RecordingFileSystem(82);
        var options = LogOptions(SegmentSizeBytes);
        ulong next = 1;
        await using (var log = WriteAheadLog.Open(fs, WalTestKit.Directory, options))
        {
            while (log.SegmentPaths.Count < 5)
            {
                await log.AppendAsync(1, Filled(300, 0x44), next++);
            }
        }

        long recordLimit = SegmentSizeBytes - WalFormat.SegmentReservedEndBytes;
        long trailerOffset = SegmentSizeBytes - WalFormat.SegmentTrailerSizeBytes;
        var segmentWrites = writes.Where(w => w.Path.EndsWith(WalFormat.SegmentExtension, StringComparison.Ordinal)).ToList();
        Assert.That(segmentWrites.Count(w => w.Offset + w.Length == recordLimit), Is.GreaterThan(0), "small writes carried zeros up to the room kept");
        foreach (var write in segmentWrites)
        {
            bool isTrailer = write.Offset == trailerOffset && write.Length == WalFormat.SegmentTrailerSizeBytes;
            bool isSyncMark = write.Length == WalFormat.SyncMarkFrameSizeBytes && write.Offset + write.Length <= trailerOffset;
            Assert.That(write.Offset + write.Length <= recordLimit || isTrailer || isSyncMark, Is.True,
                $"write {write.Offset}+{write.Length} to {write.Path} reaches past the records' room ({recordLimit}) and is neither the trailer nor a sync mark");
        }

        await using var reopened = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
        var records = WalTestKit.ReadAll(reopened);
        Assert.That(records.Select(r => r.Index), Is.EqualTo(Enumerable.Range(1, (int)next - 1).Select(i => (ulong)i)), "every segment's records read back across the cuts");
    }

    [Test]
    public async Task ARunLongerThanSixteenKibCarriesNoZerosAndTheSmallRunsAfterItGetThemOnlyAtTheSixteenthInARow()
    {
        // A busy log's few small runs sit between large ones (session 29's trace at 1,024 proposals
        // in flight): each used to carry 64 KiB because it passed the records' end; now a large run
        // starts the count again, so only a stretch of 16 small runs gets zeros.
        var (fs, writes) = RecordingFileSystem(83);
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, LogOptions(segmentSizeBytes: 4 * 1024 * 1024, maxRecordSizeBytes: 128 * 1024));
        ulong next = 1;
        for (int i = 0; i < 3; i++)
        {
            await log.AppendAsync(1, Filled(100 * 1024, 0x55), next++);
        }

        for (int i = 0; i < 20; i++)
        {
            await log.AppendAsync(1, Filled(4000, 0x66), next++);
        }

        var segment = SegmentWrites(writes, log.SegmentPaths[^1]);
        Assert.That(segment, Has.Count.EqualTo(23), "one write per synced append");
        for (int run = 0; run < 3; run++)
        {
            Assert.That(segment[run].Offset + segment[run].Length, Is.EqualTo(segment[run + 1].Offset), $"large run {run} ended at its record");
        }

        var smallWithZeros = Enumerable.Range(3, 20).Where(run => segment[run].Length > ZerosAheadBytes).Select(run => run - 3).ToList();
        Assert.That(smallWithZeros, Is.EqualTo(new[] { 15 }), "after large runs, the first zeros come with the sixteenth small run in a row (4 KB runs pass 64 KiB of zeros in 16)");
        var records = WalTestKit.ReadAll(log);
        Assert.That(records.Select(r => r.Index), Is.EqualTo(Enumerable.Range(1, 23).Select(i => (ulong)i)));
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task ARunWrittenWithAnAppendQueuedBehindItCarriesNoZeros(bool appendQueued)
    {
        // After a cut the first small run of the new segment would carry zeros (a fresh segment
        // starts its count full). Here an append arrives while the cut creates the segment, so it
        // waits behind that run when the run is written.
        const long SegmentSizeBytes = 256 * 1024;
        var writes = new List<FaultOperation>();
        WriteAheadLog? log = null;
        Task<WalPosition>? queued = null;
        int segmentsCreated = 0;
        var fs = new FaultInjectingFileSystem(86)
        {
            FailWhen = op =>
            {
                if (op.Kind == FaultOperationKind.Write)
                {
                    writes.Add(op);
                }

                // A segment is created under a temporary name and renamed into place: the second
                // rename is the cut's (the first, the open's).
                if (op.Kind == FaultOperationKind.Rename && ++segmentsCreated == 2 && appendQueued)
                {
                    // On the committing caller's thread, between the run's work being taken and
                    // written: an unsynced append only takes the log's lock, never the file's.
                    queued = log!.AppendAsync(1, Filled(900, 0x99), 100_000, sync: false).AsTask();
                }

                return false;
            },
        };
        log = WriteAheadLog.Open(fs, WalTestKit.Directory, LogOptions(SegmentSizeBytes));
        await using (log)
        {
            ulong next = 1;
            while (log.SegmentPaths.Count < 2)
            {
                await log.AppendAsync(1, Filled(900, 0x77), next++);
            }

            Assert.That(queued is null, Is.EqualTo(!appendQueued), "the append behind the run was made during the cut");
            Assert.That(queued?.IsCompletedSuccessfully ?? true, Is.True, "an unsynced append completes in its call");
            var first = SegmentWrites(writes, log.SegmentPaths[^1])[0];
            Assert.That(first.Length, appendQueued ? Is.LessThan(BlockBytes) : Is.GreaterThan(ZerosAheadBytes),
                appendQueued ? "with an append queued behind it the run carries only its record" : "with nothing behind it the new segment's first run carries zeros");
        }

        await using var reopened = WriteAheadLog.Open(fs, WalTestKit.Directory, LogOptions(SegmentSizeBytes));
        var indexes = WalTestKit.ReadAll(reopened).Select(r => r.Index).ToList();
        Assert.That(indexes[^1], Is.EqualTo(appendQueued ? 100_000UL : (ulong)indexes.Count), "every record read back, the queued one last (written and marked at the close)");
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task AWriterThreadRunWrittenWhileTheSyncerFlushesCarriesNoZeros(bool flushRunning)
    {
        // Background threads. Counted from the zeros of the first run: 12 lone runs, one held in
        // its flush while two appends queue (a group of two, so the next append goes to the writer
        // thread), then D, then E — the sixteenth small run in a row, past the zeros' end. With D's
        // flush held, E is written while the syncer flushes: nothing may carry zeros then.
        const int Payload = 7000;
        var writes = new List<FaultOperation>();
        using var written = new SemaphoreSlim(0); // released once per write recorded
        var gate = new ManualResetEventSlim(false);
        using var entered = new SemaphoreSlim(0);
        int holdNextFlush = 0;
        var fs = new FaultInjectingFileSystem(87)
        {
            FailWhen = op =>
            {
                if (op.Kind == FaultOperationKind.Write)
                {
                    lock (writes)
                    {
                        writes.Add(op);
                    }

                    written.Release();
                }

                return false;
            },
        };
        fs.BeforeEntering = (kind, path) =>
        {
            if (kind == FaultOperationKind.Flush && path.EndsWith(WalFormat.SegmentExtension, StringComparison.Ordinal) && Interlocked.Exchange(ref holdNextFlush, 0) == 1)
            {
                entered.Release();
                gate.Wait();
            }
        };
        var options = new WalOptions { SegmentSizeBytes = 4 * 1024 * 1024, MaxRecordSizeBytes = 16 * 1024, Threading = WalThreading.BackgroundThreads };
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
        ulong next = 1;
        for (int i = 0; i < 13; i++)
        {
            await log.AppendAsync(1, Filled(Payload, 0x11), next++); // the first run's zeros, then 12 lone runs
        }

        Volatile.Write(ref holdNextFlush, 1);
        ulong x = next++;
        var held = Task.Run(async () => await log.AppendAsync(1, Filled(Payload, 0x22), x)); // the caller lane, held in its flush
        await entered.WaitAsync(TimeSpan.FromSeconds(30));
        var b = log.AppendAsync(1, Filled(Payload, 0x33), next++).AsTask();
        var c = log.AppendAsync(1, Filled(Payload, 0x44), next++).AsTask();
        gate.Set();
        await Task.WhenAll(held, b, c);
        gate.Reset();

        Volatile.Write(ref holdNextFlush, flushRunning ? 1 : 0);
        var d = log.AppendAsync(1, Filled(Payload, 0x55), next++).AsTask(); // the writer thread: the last group had two waiters
        if (flushRunning)
        {
            Assert.That(await entered.WaitAsync(TimeSpan.FromSeconds(30)), Is.True, "D's flush is held on the syncer");
        }
        else
        {
            await d;
        }

        var e = log.AppendAsync(1, Filled(Payload, 0x66), next++).AsTask();
        if (flushRunning)
        {
            await WaitForSegmentWritesAsync(writes, written, log.SegmentPaths[^1], 17); // E written while D's flush is held
            gate.Set();
        }

        await Task.WhenAll(d, e);
        var segment = SegmentWrites(Snapshot(writes), log.SegmentPaths[^1]);
        Assert.That(segment, Has.Count.EqualTo(17), "A, 12 lone runs, the held one, B and C together, D, E: 18 records in 17 runs");
        Assert.That(segment.Take(16).Skip(1).All(w => w.Length < 16 * 1024), Is.True, "no zeros between the first run's and E's");
        Assert.That(segment[16].Length, flushRunning ? Is.LessThan(BlockBytes * 2) : Is.GreaterThan(ZerosAheadBytes),
            flushRunning ? "E, written while D's flush ran, carries only its record" : "E, written with both lanes idle, carries zeros");
        Assert.That(WalTestKit.ReadAll(log).Select(r => r.Index), Is.EqualTo(Enumerable.Range(1, 18).Select(i => (ulong)i)));
    }

    [Test]
    public async Task ALogReopenedAfterZerosAheadAppendsOverThemAndReadsEveryRecord()
    {
        var fs = new FaultInjectingFileSystem(84);
        var options = LogOptions(segmentSizeBytes: 256 * 1024);
        ulong next = 1;
        for (int round = 0; round < 3; round++)
        {
            // Each close writes a sync mark over the zeros after the tail; the next open starts its
            // own zeros from the recovered tail.
            await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
            for (int i = 0; i < 40; i++)
            {
                await log.AppendAsync(1, Filled(700, (byte)(round + 1)), next++);
            }
        }

        await using var reopened = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
        Assert.That(reopened.TailRepair, Is.Null, "a clean close leaves no torn tail");
        var records = WalTestKit.ReadAll(reopened);
        Assert.That(records.Select(r => r.Index), Is.EqualTo(Enumerable.Range(1, 120).Select(i => (ulong)i)));
        Assert.That(records.Select(r => r.Payload[0]), Is.EqualTo(Enumerable.Range(0, 120).Select(i => (byte)(i / 40 + 1))), "each record holds its own bytes, none overwritten by zeros");
    }

    [Test]
    public async Task OnTheRealDiskSmallSyncedAppendsOverZerosAheadReadBackAfterAReopen()
    {
        string directory = Path.Combine(Path.GetTempPath(), $"embeddedraft-zeros-ahead-{Guid.NewGuid():N}");
        try
        {
            var options = WalOptions.Default with { SegmentSizeBytes = 1024 * 1024 };
            await using (var log = WriteAheadLog.Open(PhysicalFileSystem.Instance, directory, options))
            {
                for (ulong i = 1; i <= 200; i++)
                {
                    await log.AppendAsync(1, Filled(1000, (byte)i), i);
                }
            }

            await using var reopened = WriteAheadLog.Open(PhysicalFileSystem.Instance, directory, options);
            var records = WalTestKit.ReadAll(reopened);
            Assert.That(records.Select(r => r.Index), Is.EqualTo(Enumerable.Range(1, 200).Select(i => (ulong)i)));
            Assert.That(records.All(r => r.Payload.All(b => b == (byte)r.Index)), Is.True, "every record holds its own bytes");
        }
        finally
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
    }

    private static WalOptions LogOptions(long segmentSizeBytes, int maxRecordSizeBytes = 1024) =>
        new() { SegmentSizeBytes = segmentSizeBytes, MaxRecordSizeBytes = maxRecordSizeBytes, Threading = WalThreading.CallerThread };

    private static List<FaultOperation> Snapshot(List<FaultOperation> writes)
    {
        lock (writes)
        {
            return [.. writes];
        }
    }

    /// <summary>Waits until <paramref name="path"/> has <paramref name="count"/> record writes, woken by each write recorded (<paramref name="written"/>), never by a timer.</summary>
    private static async Task WaitForSegmentWritesAsync(List<FaultOperation> writes, SemaphoreSlim written, string path, int count)
    {
        while (SegmentWrites(Snapshot(writes), path).Count < count)
        {
            Assert.That(await written.WaitAsync(Waits.Limit), Is.True, $"{count} writes to {path} within {Waits.Limit.TotalSeconds} s");
        }
    }

    private static (FaultInjectingFileSystem Fs, List<FaultOperation> Writes) RecordingFileSystem(int seed)
    {
        var writes = new List<FaultOperation>();
        var fs = new FaultInjectingFileSystem(seed)
        {
            FailWhen = op =>
            {
                if (op.Kind == FaultOperationKind.Write)
                {
                    writes.Add(op);
                }

                return false;
            },
        };
        return (fs, writes);
    }

    /// <summary>The writes to <paramref name="path"/> after its header frame (the record writes), in order.</summary>
    private static List<FaultOperation> SegmentWrites(List<FaultOperation> writes, string path) =>
        writes.Where(w => w.Path == path && w.Offset >= WalFormat.SegmentHeaderFrameSizeBytes).ToList();

    private static long AlignUp(long offset) => (offset + BlockBytes - 1) / BlockBytes * BlockBytes;

    private static byte[] Filled(int length, byte value) => Enumerable.Repeat(value, length).ToArray();

    private static byte[] ReadBytes(FaultInjectingFileSystem fs, string path, long offset, long length)
    {
        using var file = fs.Open(path, FileOpenMode.ReadOnly);
        var bytes = new byte[length];
        Assert.That(file.Read(offset, bytes), Is.EqualTo(length));
        return bytes;
    }
}
