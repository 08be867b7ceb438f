using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Storage.Tests.Wal;

/// <summary>
/// A released segment is kept as a spare and the next cut recycles its file as it is (its old
/// bytes, and so its written blocks, kept; the new segment flagged recycled and its frames tagged)
/// instead of deleting it and allocating a fresh one; the log reads, reopens and survives crashes
/// as with fresh segments, and a previous life's frames past the tail never extend the log nor
/// pose as proof. Seeds: WAL_SEED=N for one, STORAGE_SOAK_SEEDS=N for more.
/// </summary>
public sealed class WalSegmentReuseTests
{
    private static readonly string SparePath = Path.Combine(WalTestKit.Directory, WalSpareSegment.FileName);

    private static IEnumerable<int> CrashSeeds() => WalTestKit.Seeds(4000, 12);

    [Test]
    public async Task AReleasedSegmentIsKeptAndTheNextCutReusesItsFileInsteadOfAFreshOne()
    {
        var operations = new List<FaultOperation>();
        var fs = new FaultInjectingFileSystem(70) { FailWhen = op => { operations.Add(op); return false; } };
        // On the calling thread: every file-system call is done by the time an append returns.
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments() with { Threading = WalThreading.CallerThread });
        for (ulong i = 1; i <= 60; i++)
        {
            await log.AppendAsync(1, new byte[400], i);
        }

        var before = log.SegmentPaths;
        int released = log.ReleaseBefore(40);
        Assert.That(released, Is.GreaterThanOrEqualTo(2));
        Assert.That(fs.FileExists(SparePath), Is.True, "the oldest released segment is kept under the spare's name");
        Assert.That(before.Take(released).Any(fs.FileExists), Is.False, "no released segment keeps its segment name");
        int deletes = operations.Count(op => op.Kind == FaultOperationKind.Delete);
        Assert.That(deletes, Is.EqualTo(released - 1), "every released segment but the kept one is deleted");

        int segments = log.SegmentPaths.Count;
        ulong next = 61;
        while (log.SegmentPaths.Count == segments)
        {
            await log.AppendAsync(1, new byte[400], next++);
        }

        Assert.That(fs.FileExists(SparePath), Is.False, "the cut took the spare");
        Assert.That(operations.Count(op => op.Kind == FaultOperationKind.Delete), Is.EqualTo(deletes), "the cut deleted nothing");
        Assert.That(operations.Any(op => op.Kind == FaultOperationKind.Create && op.Path.StartsWith(log.SegmentPaths[^1], StringComparison.Ordinal)), Is.False,
            "the new segment was not created as a fresh file");
        var records = WalTestKit.ReadAll(log, fromIndex: 40);
        Assert.That(records[^1].Index, Is.EqualTo(next - 1));
        Assert.That(records.Select(r => r.Index), Is.Ordered.And.Unique);
    }

    [Test]
    public async Task AReusedSegmentHoldsNoFrameOfItsPreviousLifeAfterAReopen()
    {
        var fs = new FaultInjectingFileSystem(71);
        var options = WalTestKit.SmallSegments();
        ulong next = 1;
        for (int round = 0; round < 4; round++)
        {
            // Each round: fill past a few cuts, release all but the newest segments, close and reopen
            // (a reused segment's stale frames would lie right after its sync mark).
            await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
            for (int i = 0; i < 25; i++)
            {
                await log.AppendAsync(1, new byte[400], next++);
            }

            log.ReleaseBefore(next - 8);
        }

        await using var reopened = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
        var records = WalTestKit.ReadAll(reopened);
        Assert.That(records[^1].Index, Is.EqualTo(next - 1));
        Assert.That(records.Select(r => r.Index), Is.EqualTo(Enumerable.Range((int)records[0].Index, records.Count).Select(i => (ulong)i)), "one contiguous run of records, each once");
    }

    [Test]
    public async Task ARecycledSegmentKeepsItsPreviousLifePastItsTailAndReopensWithoutARepair()
    {
        var (fs, options, segment, tail, last, _, _) = await CloseARecycledLogAsync(seed: 72, recordsAfterCut: 2);

        Assert.That(HeaderFlags(fs, segment), Is.EqualTo(WalFormat.SegmentFlagRecycled), "the header says the segment is recycled");
        Assert.That(ReadBytes(fs, segment, tail + WalFormat.SyncMarkFrameSizeBytes, 512).Any(b => b != 0), Is.True,
            "past the sync mark lie the previous life's bytes: nothing zeroed them");
        await using var reopened = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
        Assert.That(reopened.TailRepair, Is.Null, "the previous life's frames (which claim durable offsets far past this tail) are neither records nor proof nor a torn tail");
        var records = WalTestKit.ReadAll(reopened);
        Assert.That(records[^1].Index, Is.EqualTo(last));
        Assert.That(records.Select(r => r.Index), Is.EqualTo(Enumerable.Range((int)records[0].Index, records.Count).Select(i => (ulong)i)), "one contiguous run, each once");
    }

    [Test]
    public async Task ATornGroupInARecycledSegmentIsCutAtItsDamagedFrameAndOnlyThisLifesBytesAreSaved()
    {
        var (fs, options, segment, tail, last, _, lastPosition) = await CloseARecycledLogAsync(seed: 74, recordsAfterCut: 3);

        // What a crash leaves when the last record's write and the close's sync mark tore: their
        // lost sector pieces read as the previous life's bytes, not zeros (no zero piece anywhere).
        var random = new Random(74);
        byte[] stale = new byte[WalFormat.SectorSizeBytes];
        random.NextBytes(stale);
        long lastFrameEnd = tail;
        long piece = (lastPosition.Offset + WalFormat.FrameHeaderSizeBytes + WalFormat.SectorSizeBytes) / WalFormat.SectorSizeBytes * WalFormat.SectorSizeBytes;
        Assert.That(piece, Is.LessThan(lastFrameEnd), "the last record spans a sector boundary");
        WriteDurably(fs, segment, lastFrameEnd, stale.AsSpan(0, WalFormat.SyncMarkFrameSizeBytes));
        WriteDurably(fs, segment, piece, stale.AsSpan(0, (int)(lastFrameEnd - piece)));

        await using var reopened = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
        var repair = reopened.TailRepair;
        Assert.That(repair, Is.Not.Null, "a damaged frame of this life after the last proof is a torn tail");
        Assert.That(repair!.Offset, Is.EqualTo(lastPosition.Offset));
        Assert.That(repair.LengthBytes, Is.EqualTo(lastFrameEnd - lastPosition.Offset), "only the damaged frame is cut and saved, not the previous life after it");
        Assert.That(repair.Reason, Does.Contain("Crc mismatch"));
        var records = WalTestKit.ReadAll(reopened);
        Assert.That(records[^1].Index, Is.EqualTo(last - 1));
        await reopened.AppendAsync(1, new byte[] { 9 }, last);
        Assert.That(WalTestKit.ReadAll(reopened)[^1].Index, Is.EqualTo(last), "the log continues at the cut");
    }

    [Test]
    public async Task ADamagedFlushedFrameOfARecycledSegmentIsRefusedNotCut()
    {
        var (fs, options, segment, _, _, damaged, _) = await CloseARecycledLogAsync(seed: 75, recordsAfterCut: 3);

        // Synced records each: the frames after the first claim it durable.
        fs.FlipBit(segment, damaged.Offset + WalFormat.FrameHeaderSizeBytes + 5, 3);
        var error = Assert.Throws<CorruptionException>(() => WriteAheadLog.Open(fs, WalTestKit.Directory, options));
        Assert.That(error!.Path, Is.EqualTo(segment));
        Assert.That(error.Offset, Is.EqualTo(damaged.Offset));
        Assert.That(error.Message, Does.Contain("A torn write cannot explain it"));
    }

    [Test]
    public async Task AReaderMeetingADamagedFinishedRecycledSegmentThrowsNamingIt()
    {
        var fs = new FaultInjectingFileSystem(76);
        var options = WalTestKit.SmallSegments() with { Threading = WalThreading.CallerThread };
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
        var (segment, _, last) = await FillIntoARecycledSegmentAsync(log, recordsAfterCut: 1);
        var inRecycled = WalTestKit.ReadAll(log).Where(r => r.Position.Sequence == SequenceOf(segment)).ToList();
        ulong next = last + 1;
        int segments = log.SegmentPaths.Count;
        while (log.SegmentPaths.Count == segments)
        {
            await log.AppendAsync(1, new byte[400], next++);
        }

        Assert.That(WalTestKit.ReadAll(log, fromIndex: inRecycled[0].Index).Select(r => r.Index), Is.EqualTo(Enumerable.Range((int)inRecycled[0].Index, (int)(next - inRecycled[0].Index)).Select(i => (ulong)i)),
            "a finished recycled segment reads to its true end, where the next segment's chain starts");
        fs.FlipBit(segment, inRecycled[^1].Position.Offset + WalFormat.FrameHeaderSizeBytes + 7, 0);
        var error = Assert.Throws<CorruptionException>(() => WalTestKit.ReadAll(log, fromIndex: inRecycled[0].Index));
        Assert.That(error!.Path, Is.EqualTo(segment), "the damaged segment is named");
        Assert.That(error.Offset, Is.EqualTo(inRecycled[^1].Position.Offset), "where its frames stopped");
    }

    [Test]
    public async Task AFlippedLengthWordOfARecordASyncMarkProvesIsRefusedNotDropped()
    {
        // A word that does not decode under the tag ends a recycled segment's frames (stale bytes
        // look like that too), so the proof must come from the mark after it, which chains from
        // the damaged record's intact stored crc.
        var (fs, options, segment, tail, _, _, _) = await CloseARecycledLogAsync(seed: 90, recordsAfterCut: 3);

        long lastRecord = tail - WalFormat.FrameSize(400);
        fs.FlipBit(segment, lastRecord, 0);
        var error = Assert.Throws<CorruptionException>(() => WriteAheadLog.Open(fs, WalTestKit.Directory, options));
        Assert.That(error!.Path, Is.EqualTo(segment));
        Assert.That(error.Offset, Is.EqualTo(lastRecord));
        Assert.That(error.Message, Does.Contain($"the frame at offset {tail}"), "the close's sync mark is the proof");
    }

    [Test]
    public async Task ALoneFrameACrashLeftPastAnUncutTailNeverComesBackAfterTheSameRecordIsAppendedAgain()
    {
        var (fs, options, segment, _, last, _, _) = await CloseARecycledLogAsync(seed: 92, recordsAfterCut: 1);

        // F1 and F2 in one write after a clean open; a crash loses F1's first sector piece (it
        // reads as the previous life's bytes), F2 survives alone: no pair, no proof, not cut.
        byte[] f1Payload = Enumerable.Repeat((byte)0x11, 1000).ToArray();
        byte[] f2Payload = Enumerable.Repeat((byte)0x22, 300).ToArray();
        var first = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
        var f1 = await first.AppendAsync(1, f1Payload, last + 1, sync: false);
        await first.AppendAsync(1, f2Payload, last + 2, sync: true);
        fs.Crash();
        first.Dispose(); // a failed log's dispose does not throw
        fs.Restart();
        long pieceEnd = (f1.Offset / WalFormat.SectorSizeBytes + 1) * WalFormat.SectorSizeBytes;
        var stale = new byte[pieceEnd - f1.Offset];
        new Random(5).NextBytes(stale);
        WriteDurably(fs, segment, f1.Offset, stale);

        var second = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
        Assert.That(WalTestKit.ReadAll(second)[^1].Index, Is.EqualTo(last), "the log ends before the torn F1");
        // The caller appends the same record again (Raft re-sends an entry it lost), durably, then crashes.
        await second.AppendAsync(1, f1Payload, last + 1, sync: true);
        fs.Crash();
        second.Dispose();
        fs.Restart();

        await using var third = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
        var records = WalTestKit.ReadAll(third);
        Assert.That(records[^1].Index, Is.EqualTo(last + 1), "the log ends at the record appended after the open, not at F2, which no open kept");
        Assert.That(records[^1].Payload, Is.EqualTo(f1Payload));
    }

    [Test]
    public async Task AStaleWordThatDecodesByChanceAfterACleanTailIsCutAsOneFrameAndNothingIsLost()
    {
        var (fs, options, segment, tail, last, _, _) = await CloseARecycledLogAsync(seed: 94, recordsAfterCut: 2);
        // Right after the close's sync mark, a previous life's word that this life's tag decodes
        // (a 2^-16 chance for any stale word), followed by stale bytes. It cannot be told from a
        // damaged record of this life, so it is saved and reported (harmless: the bytes were stale).
        var stale = new byte[WalFormat.FrameSize(100)];
        new Random(3).NextBytes(stale);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(stale, WalFormat.EncodeLengthWord(100, 1, FrameTag.ForSegment(SequenceOf(segment), recycled: true)));
        long staleAt = tail + WalFormat.SyncMarkFrameSizeBytes;
        WriteDurably(fs, segment, staleAt, stale);
        await using var reopened = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
        Assert.That(reopened.TailRepair, Is.Not.Null);
        Assert.That((reopened.TailRepair!.Offset, reopened.TailRepair.LengthBytes), Is.EqualTo((staleAt, (long)stale.Length)), "that one frame's bytes, no more");
        Assert.That(WalTestKit.ReadAll(reopened)[^1].Index, Is.EqualTo(last), "every record is there");
    }

    /// <summary>
    /// A record of this life whose synced word alone was damaged after a kill (no later frame
    /// claims it: within the bound, it may be cut) is cut with its bytes saved and reported, never
    /// taken for stale bytes and overwritten unsaved.
    /// </summary>
    [TestCase(0)]
    [TestCase(7)]
    public async Task ADamagedSyncedWordOfTheLastRecordBeforeAKillIsCutSavedAndReported(int bit)
    {
        var (fs, options, segment, _, last, _, _) = await CloseARecycledLogAsync(seed: 95, recordsAfterCut: 2);
        var second = WriteAheadLog.Open(fs, WalTestKit.Directory, options); // appends its sync mark
        byte[] payload = Enumerable.Repeat((byte)0x33, 200).ToArray();
        var record = await second.AppendAsync(1, payload, last + 1, sync: true);
        fs.Crash(); // killed: no close mark
        second.Dispose();
        fs.Restart();
        fs.FlipBit(segment, record.Offset + 16, bit);
        await using var third = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
        Assert.That(third.TailRepair, Is.Not.Null, "the cut is reported");
        Assert.That((third.TailRepair!.Offset, third.TailRepair.LengthBytes), Is.EqualTo((record.Offset, (long)WalFormat.FrameSize(payload.Length))));
        Assert.That(ReadBytes(fs, third.TailRepair.SideFilePath, WalFormat.FrameHeaderSizeBytes, payload.Length), Is.EqualTo(payload), "the side file holds the record");
        Assert.That(WalTestKit.ReadAll(third)[^1].Index, Is.EqualTo(last));
    }

    /// <summary>
    /// A release renames a segment to the spare's name and then syncs the directory; a cut in
    /// between must not recycle the file: if it did and a crash undid the rename, the released
    /// segment's name would hold the new segment's header, and the log would not open.
    /// </summary>
    [Test]
    public async Task ACutNeverRecyclesASpareWhoseRenameIsNotYetDurable()
    {
        var inner = new FaultInjectingFileSystem(93);
        var fs = new SpareSyncGate(inner);
        var options = WalTestKit.SmallSegments() with { Threading = WalThreading.CallerThread };
        var log = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
        ulong next = 1;
        for (; next <= 60; next++)
        {
            await log.AppendAsync(1, Enumerable.Repeat((byte)7, 400).ToArray(), next);
        }

        fs.HoldTheSyncAfterTheSpareRename = true;
        var release = Task.Run(() => log.ReleaseBefore(40));
        Assert.That(fs.SyncHeld.Wait(TimeSpan.FromSeconds(30)), Is.True, "the release renamed the spare and waits to sync the directory");
        fs.CrashWhenASegmentIsNamed = true;
        Assert.CatchAsync(async () =>
        {
            while (true)
            {
                await log.AppendAsync(1, new byte[400], next++);
            }
        }, "the next cut crashes the disk as it names its segment");
        Assert.That(fs.CrashedAsASegmentWasNamed, Is.True, "a cut was reached");
        fs.ReleaseSync.Set();
        try
        {
            await release;
        }
        catch (Exception e) when (e is SimulatedCrashException or IOException)
        {
            // the release's sync met the crashed disk
        }

        log.Dispose();
        inner.Restart();

        await using var reopened = WriteAheadLog.Open(inner, WalTestKit.Directory, options);
        Assert.That(WalTestKit.ReadAll(reopened)[^1].Index, Is.GreaterThanOrEqualTo(60UL), "every acknowledged record is there");
    }

    /// <summary>
    /// Appends 400-byte records (each synced) past a few cuts, releases all but the newest segments
    /// (the first released is kept as the spare), then appends until the next cut recycles the
    /// spare and <paramref name="recordsAfterCut"/> more: returns the recycled segment, its tail and
    /// the last index. The spare was a whole segment of frames, so its previous life lies past the
    /// tail, with synced words claiming offsets far beyond it.
    /// </summary>
    private static async Task<(string Segment, long Tail, ulong LastIndex)> FillIntoARecycledSegmentAsync(WriteAheadLog log, int recordsAfterCut)
    {
        ulong next = 1;
        for (; next <= 60; next++)
        {
            await log.AppendAsync(1, new byte[400].Select((_, i) => (byte)(next + (ulong)i | 1)).ToArray(), next);
        }

        Assert.That(log.ReleaseBefore(40), Is.GreaterThan(1));
        int segments = log.SegmentPaths.Count;
        WalPosition position = default;
        while (log.SegmentPaths.Count == segments)
        {
            position = await log.AppendAsync(1, new byte[400], next++);
        }

        for (int i = 1; i < recordsAfterCut; i++)
        {
            position = await log.AppendAsync(1, Enumerable.Repeat((byte)0x5A, 400).ToArray(), next++);
        }

        return (log.SegmentPaths[^1], position.Offset + WalFormat.FrameSize(400), next - 1);
    }

    /// <summary>
    /// A log on a new disk (caller-thread writes) filled into a recycled segment
    /// (<see cref="FillIntoARecycledSegmentAsync"/>), then closed cleanly (a sync mark at the tail):
    /// the disk, the options, the recycled segment, its tail before the mark, the last index, and
    /// the positions of the segment's first and last records.
    /// </summary>
    private static async Task<(FaultInjectingFileSystem Fs, WalOptions Options, string Segment, long Tail, ulong LastIndex, WalPosition FirstInSegment, WalPosition Last)> CloseARecycledLogAsync(int seed, int recordsAfterCut)
    {
        var fs = new FaultInjectingFileSystem(seed);
        var options = WalTestKit.SmallSegments() with { Threading = WalThreading.CallerThread };
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
        var (segment, tail, last) = await FillIntoARecycledSegmentAsync(log, recordsAfterCut);
        Assert.That(fs.FileExists(SparePath), Is.False, "the cut took the spare");
        var inSegment = WalTestKit.ReadAll(log).Where(r => r.Position.Sequence == SequenceOf(segment)).ToList();
        return (fs, options, segment, tail, last, inSegment[0].Position, inSegment[^1].Position);
    }

    private static long SequenceOf(string segment)
    {
        Assert.That(WalFormat.TryParseSegmentFileName(Path.GetFileName(segment), out long sequence, out _), Is.True);
        return sequence;
    }

    private static uint HeaderFlags(FaultInjectingFileSystem fs, string segment) =>
        System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(fs, segment, WalFormat.FrameHeaderSizeBytes + 12, 4));

    private static byte[] ReadBytes(FaultInjectingFileSystem fs, string path, long offset, int count)
    {
        using var file = fs.Open(path, EmbeddedRaft.Storage.IO.FileOpenMode.ReadOnly);
        var bytes = new byte[count];
        Assert.That(file.Read(offset, bytes), Is.EqualTo(count));
        return bytes;
    }

    private static void WriteDurably(FaultInjectingFileSystem fs, string path, long offset, ReadOnlySpan<byte> bytes)
    {
        using var file = fs.Open(path, EmbeddedRaft.Storage.IO.FileOpenMode.OpenExisting);
        file.Write(offset, bytes);
        file.Flush();
    }

    /// <summary>Holds the directory sync that follows a rename to the spare's name until released, and crashes the disk when a temporary is renamed to a segment's name.</summary>
    private sealed class SpareSyncGate(FaultInjectingFileSystem inner) : EmbeddedRaft.Storage.IO.IFileSystem
    {
        [ThreadStatic]
        private static bool t_renamedToSpare;

        public volatile bool HoldTheSyncAfterTheSpareRename;
        public volatile bool CrashWhenASegmentIsNamed;
        public volatile bool CrashedAsASegmentWasNamed;

        public ManualResetEventSlim SyncHeld { get; } = new(false);

        public ManualResetEventSlim ReleaseSync { get; } = new(false);

        public EmbeddedRaft.Storage.IO.IStorageFile Open(string path, EmbeddedRaft.Storage.IO.FileOpenMode mode) => inner.Open(path, mode);

        public bool FileExists(string path) => inner.FileExists(path);

        public bool DirectoryExists(string path) => inner.DirectoryExists(path);

        public void CreateDirectory(string path) => inner.CreateDirectory(path);

        public void DeleteFile(string path) => inner.DeleteFile(path);

        public IReadOnlyList<string> ListFiles(string directory) => inner.ListFiles(directory);

        public IDisposable AcquireExclusiveLock(string lockFilePath) => inner.AcquireExclusiveLock(lockFilePath);

        public void Rename(string sourcePath, string destinationPath)
        {
            if (CrashWhenASegmentIsNamed && sourcePath.EndsWith(".wal.tmp", StringComparison.Ordinal) && destinationPath.EndsWith(".wal", StringComparison.Ordinal))
            {
                CrashedAsASegmentWasNamed = true;
                inner.Crash();
                throw new SimulatedCrashException("crashed as a segment was named");
            }

            inner.Rename(sourcePath, destinationPath);
            t_renamedToSpare = HoldTheSyncAfterTheSpareRename && destinationPath.EndsWith(WalSpareSegment.FileName, StringComparison.Ordinal);
        }

        public void SyncDirectory(string directory)
        {
            if (t_renamedToSpare)
            {
                t_renamedToSpare = false;
                HoldTheSyncAfterTheSpareRename = false;
                SyncHeld.Set();
                ReleaseSync.Wait();
            }

            inner.SyncDirectory(directory);
        }
    }

    [Test]
    public async Task NoReleasedSegmentIsKeptWhileAReaderIsOpen()
    {
        var fs = new FaultInjectingFileSystem(73);
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments());
        for (ulong i = 1; i <= 60; i++)
        {
            await log.AppendAsync(1, new byte[400], i);
        }

        using (var reader = log.ReadFrom(1UL))
        {
            Assert.That(reader.TryReadNext(out _), Is.True);
            Assert.That(log.ReleaseBefore(20), Is.GreaterThan(0));
            Assert.That(fs.FileExists(SparePath), Is.False, "a reader may still read a released segment's file: it is deleted, never reused");
        }

        Assert.That(log.ReleaseBefore(40), Is.GreaterThan(0));
        Assert.That(fs.FileExists(SparePath), Is.True, "with the reader closed, a released segment is kept again");
    }

    /// <summary>
    /// Crash after every mutating operation of a workload that releases segments as it goes (so
    /// cuts reuse them): after restart the log opens, and holds one contiguous run of the records
    /// appended, ending between the last acknowledged and the last accepted one.
    /// </summary>
    [TestCaseSource(nameof(CrashSeeds))]
    public Task ACrashAfterAnyOperationWhileSegmentsAreReusedLeavesEverySyncedRecord(int seed) =>
        CrashAfterEveryOperationAsync(seed, WalTestKit.SmallSegments() with { Threading = WalThreading.CallerThread }, everyPointReached: true);

    /// <summary>
    /// The same with the writer and syncer threads (each append waits for the writer to go idle, so
    /// runs repeat the clean one's operations except where the threads cut a run of appends into
    /// writes differently: such a run may end before its crash point, and at most a tenth of the
    /// points may be missed that way, as in WalCrashTests).
    /// </summary>
    [TestCaseSource(nameof(BackgroundCrashSeeds))]
    public Task ACrashAfterAnyOperationWhileSegmentsAreRecycledOnTheBackgroundThreadsLeavesEverySyncedRecord(int seed) =>
        CrashAfterEveryOperationAsync(seed, WalTestKit.SmallSegments(), everyPointReached: false);

    private static IEnumerable<int> BackgroundCrashSeeds() => WalTestKit.Seeds(4500, 8);

    private static async Task CrashAfterEveryOperationAsync(int seed, WalOptions options, bool everyPointReached)
    {
        TestContext.Out.WriteLine($"seed {seed} ({WalTestKit.Reproduce(seed)})");
        var steps = Plan(seed);
        var clean = new FaultInjectingFileSystem(seed);
        var cleanOutcome = await RunAsync(clean, steps, options);
        Assert.That(cleanOutcome.Acknowledged, Is.EqualTo(steps.Count), "the workload completes without a crash");
        Assert.That(cleanOutcome.Kept, Is.GreaterThan(0), "the workload keeps released segments for its cuts to reuse");
        long operations = clean.OperationCount;
        int notReached = 0, repairs = 0;
        for (long crashAt = 1; crashAt <= operations; crashAt++)
        {
            var fs = new FaultInjectingFileSystem(seed * 7919 + (int)crashAt) { CrashAfterOperation = crashAt };
            var outcome = await RunAsync(fs, steps, options);
            string where = $"seed {seed}, crash after operation {crashAt} of {operations}; {WalTestKit.Reproduce(seed)}";
            if (everyPointReached || fs.IsCrashed)
            {
                Assert.That(fs.IsCrashed, Is.True, where);
            }
            else
            {
                Assert.That(fs.OperationCount, Is.LessThan(crashAt), $"a run that did not crash made fewer operations than its crash point; {where}");
                Assert.That(outcome.Acknowledged, Is.EqualTo(steps.Count), $"a run that did not crash completed the workload; {where}");
                notReached++;
                continue;
            }

            fs.Restart(dropUnflushed: new Random(seed ^ (int)crashAt).Next(2) == 0);
            List<StoredRecord> records;
            try
            {
                await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
                records = WalTestKit.ReadAll(log);
                repairs += log.TailRepair is null ? 0 : 1;
                await log.AppendAsync(1, new byte[] { 42 }, (ulong)steps.Count + 1);
            }
            catch (CorruptionException e)
            {
                Assert.Fail($"reopen or read failed: {e.Message}; {where}");
                throw;
            }

            ulong last = records.Count == 0 ? 0 : records[^1].Index;
            Assert.That(last, Is.InRange((ulong)outcome.Acknowledged, (ulong)outcome.Accepted), $"the log ends between the last acknowledged and the last accepted record; {where}");
            for (int i = 1; i < records.Count; i++)
            {
                Assert.That(records[i].Index, Is.EqualTo(records[i - 1].Index + 1), $"records are one contiguous run; {where}");
            }

            foreach (var record in records)
            {
                Assert.That(record.Payload, Is.EqualTo(steps[(int)record.Index - 1]), $"record {record.Index} is the one appended; {where}");
            }
        }

        Assert.That(notReached, Is.LessThanOrEqualTo(Math.Max(2, operations / 10)), $"crash points past a shorter run, of {operations}; {WalTestKit.Reproduce(seed)}");
        TestContext.Out.WriteLine($"{operations} crash points ({notReached} past a shorter run), {repairs} torn tails repaired, {cleanOutcome.Kept} segments kept for reuse in the clean run");
    }

    private static List<byte[]> Plan(int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, 70).Select(_ => WalTestKit.Payload(random, 200, 700)).ToList();
    }

    private static async Task<(int Accepted, int Acknowledged, int Kept)> RunAsync(FaultInjectingFileSystem fs, List<byte[]> steps, WalOptions options)
    {
        int accepted = 0, acknowledged = 0, kept = 0;
        WriteAheadLog? log = null;
        try
        {
            log = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
            for (int i = 1; i <= steps.Count; i++)
            {
                accepted = i;
                bool sync = i % 3 == 0;
                await log.AppendAsync(1, steps[i - 1], (ulong)i, sync);
                if (sync)
                {
                    acknowledged = i;
                }

                await log.WhenWriterIdleAsync();

                if (i % 10 == 0)
                {
                    bool spareBefore = fs.FileExists(SparePath);
                    log.ReleaseBefore((ulong)i - 6);
                    kept += !spareBefore && fs.FileExists(SparePath) ? 1 : 0;
                }
            }

            await log.SyncAsync();
            acknowledged = steps.Count;
        }
        catch (Exception e) when (e is SimulatedCrashException or IOException && fs.IsCrashed)
        {
        }
        finally
        {
            if (log is not null)
            {
                await log.DisposeAsync();
            }
        }

        return (accepted, acknowledged, kept);
    }
}
