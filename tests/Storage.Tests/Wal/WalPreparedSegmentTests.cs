using EmbeddedRaft.Storage.IO;
using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Storage.Tests.Wal;

/// <summary>
/// Segments prepared ahead of need, zero-filled (<see cref="WalSegmentPreparer"/>), on a file
/// system whose preallocated space is unwritten: cuts take the prepared spare, the records read
/// back exactly, a spare never counts as a segment (even one holding valid-looking records), a
/// failed preparation only falls back to preallocated segments, and disposal leaves no spare.
/// </summary>
public sealed class WalPreparedSegmentTests
{
    private static readonly string SparePath = Path.Combine(WalTestKit.Directory, WalSegmentPreparer.SpareFileName);

    [Test]
    public async Task CutsTakeThePreparedSpareAndEveryRecordReadsBackAcrossAReopen()
    {
        var random = new Random(11);
        TestContext.Out.WriteLine("seed 11");
        var fs = new FaultInjectingFileSystem(11) { PreallocatedSpaceIsUnwritten = true };
        var renamedSpares = 0;
        fs.FailWhen = op =>
        {
            if (op.Kind == FaultOperationKind.Rename && op.Path == SparePath)
            {
                Interlocked.Increment(ref renamedSpares);
            }

            return false;
        };
        var appended = new List<(ulong Index, byte[] Payload)>();
        await using (var log = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments()))
        {
            Assert.That(log.SegmentPreparer, Is.Not.Null, "a file system with unwritten preallocation gets a preparer");
            for (ulong index = 1; index <= 60; index++)
            {
                // Give the preparer its turn before each record, so that every cut finds a spare.
                await WaitForSpareAsync(log);
                var payload = WalTestKit.Payload(random, 300, 900);
                await log.AppendAsync(1, payload, index);
                appended.Add((index, payload));
            }

            Assert.That(log.SegmentPaths, Has.Count.GreaterThan(5), "the records cut several segments");
            Assert.That(renamedSpares, Is.EqualTo(log.SegmentPaths.Count - 1), "every cut took the prepared spare");
            AssertRecords(WalTestKit.ReadAll(log), appended);
        }

        Assert.That(fs.FileExists(SparePath), Is.False, "disposal deletes the spare");
        Assert.That(fs.OpenFiles, Is.Empty, "disposal closes the spare");
        await using var reopened = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments());
        AssertRecords(WalTestKit.ReadAll(reopened), appended);
    }

    [Test]
    public async Task TheNextSpareIsNotStartedWhileTheTakenOneIsBecomingASegment()
    {
        // The taken spare gets its header and a flush before its rename; the preparer must not
        // reopen and truncate the path meanwhile (it did once: a cut then failed, or lost data).
        // The header's flush is held for a while to give a wrong preparer every chance.
        var fs = new FaultInjectingFileSystem(16) { PreallocatedSpaceIsUnwritten = true };
        var opsOnSpare = new List<string>();
        bool headerWritten = false;
        fs.FailWhen = op =>
        {
            if (op.Path == SparePath)
            {
                lock (opsOnSpare)
                {
                    opsOnSpare.Add($"{op.Kind}@{op.Offset}+{op.Length}");
                    if (op.Kind == FaultOperationKind.Write && op.Offset == 0 && op.Length == WalFormat.SegmentHeaderFrameSizeBytes)
                    {
                        headerWritten = true;
                    }
                    else if (op.Kind == FaultOperationKind.Rename)
                    {
                        headerWritten = false;
                    }
                    else if (headerWritten && op.Kind is FaultOperationKind.Create or FaultOperationKind.SetLength or FaultOperationKind.Preallocate or FaultOperationKind.Write)
                    {
                        Assert.Fail($"the spare was touched ({op.Kind}) between its header and its rename: {string.Join(", ", opsOnSpare)}");
                    }
                }
            }

            return false;
        };
        fs.BeforeEntering = (kind, path) =>
        {
            bool hold;
            lock (opsOnSpare)
            {
                hold = kind == FaultOperationKind.Flush && path == SparePath && headerWritten;
            }

            if (hold)
            {
                Thread.Sleep(20);
            }
        };
        var random = new Random(16);
        TestContext.Out.WriteLine("seed 16");
        var appended = new List<(ulong Index, byte[] Payload)>();
        await using (var log = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments()))
        {
            for (ulong index = 1; index <= 40; index++)
            {
                await WaitForSpareAsync(log);
                var payload = WalTestKit.Payload(random, 300, 900);
                await log.AppendAsync(1, payload, index);
                appended.Add((index, payload));
            }

            Assert.That(log.SegmentPreparer!.Failed, Is.False);
            AssertRecords(WalTestKit.ReadAll(log), appended);
        }

        await using var reopened = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments());
        AssertRecords(WalTestKit.ReadAll(reopened), appended);
    }

    [Test]
    public async Task TheFirstSegmentOfANewLogIsWrittenWithZerosToItsEnd()
    {
        var fs = new FaultInjectingFileSystem(12) { PreallocatedSpaceIsUnwritten = true };
        var zeroWrites = new List<(long Offset, long Length)>();
        fs.FailWhen = op =>
        {
            if (op.Kind == FaultOperationKind.Write && op.Path.EndsWith(WalFormat.SegmentExtension + WalFormat.TempSuffix, StringComparison.Ordinal) && op.Path != SparePath)
            {
                lock (zeroWrites)
                {
                    zeroWrites.Add((op.Offset, op.Length));
                }
            }

            return false;
        };
        var options = WalTestKit.SmallSegments(segmentSizeBytes: 64 * 1024);
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
        // The header, then zeros from its end to the segment's end.
        Assert.That(zeroWrites[0].Offset, Is.EqualTo(0));
        Assert.That(zeroWrites.Skip(1).Sum(w => w.Length), Is.EqualTo(options.SegmentSizeBytes - WalFormat.SegmentHeaderFrameSizeBytes));
        Assert.That(zeroWrites[^1].Offset + zeroWrites[^1].Length, Is.EqualTo(options.SegmentSizeBytes));
    }

    [Test]
    public async Task ASpareHoldingValidRecordsIsDeletedAtOpenAndNeverRead()
    {
        // A crash after a spare got its header (it was becoming a segment) but before its rename
        // was durable leaves a file that looks like a segment under the spare's name. Here it is
        // a whole copy of a real segment full of records: the open must ignore and delete it.
        var fs = new FaultInjectingFileSystem(13);
        var random = new Random(13);
        TestContext.Out.WriteLine("seed 13");
        var appended = new List<(ulong Index, byte[] Payload)>();
        string firstSegment;
        await using (var log = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments()))
        {
            for (ulong index = 1; index <= 3; index++)
            {
                var payload = WalTestKit.Payload(random, 100, 200);
                await log.AppendAsync(1, payload, index);
                appended.Add((index, payload));
            }

            firstSegment = log.SegmentPaths[0];
        }

        var bytes = new byte[fs.GetLength(firstSegment)];
        using (var source = fs.Open(firstSegment, FileOpenMode.ReadOnly))
        {
            source.Read(0, bytes);
        }

        // The copy claims to be the next segment: sequence 1 (header bytes rewritten would break its crc; a copy is the strongest stale content).
        using (var spare = fs.Open(SparePath, FileOpenMode.CreateNew))
        {
            spare.Write(0, bytes);
            spare.Flush();
        }

        fs.SyncDirectory(WalTestKit.Directory);
        fs.Restart();
        await using var reopened = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments());
        Assert.That(fs.FileExists(SparePath), Is.False, "the open deleted the spare");
        Assert.That(reopened.SegmentPaths, Has.Count.EqualTo(1));
        AssertRecords(WalTestKit.ReadAll(reopened), appended);
    }

    [Test]
    public async Task AFailedPreparationFallsBackToPreallocatedSegments()
    {
        var fs = new FaultInjectingFileSystem(14) { PreallocatedSpaceIsUnwritten = true };
        fs.FailWhen = op => op.Path == SparePath && op.Kind == FaultOperationKind.Write;
        var random = new Random(14);
        TestContext.Out.WriteLine("seed 14");
        var appended = new List<(ulong Index, byte[] Payload)>();
        await using (var log = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments()))
        {
            var preparer = log.SegmentPreparer!;
            await Waits.UntilAsync(() => preparer.Failed, "the preparation to fail");
            for (ulong index = 1; index <= 30; index++)
            {
                var payload = WalTestKit.Payload(random, 300, 900);
                await log.AppendAsync(1, payload, index);
                appended.Add((index, payload));
            }

            Assert.That(log.SegmentPaths, Has.Count.GreaterThan(3), "segments were cut without spares");
            AssertRecords(WalTestKit.ReadAll(log), appended);
        }

        Assert.That(fs.OpenFiles, Is.Empty);
        await using var reopened = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments());
        AssertRecords(WalTestKit.ReadAll(reopened), appended);
    }

    [Test]
    public async Task OnTheRealDiskSegmentsComePreparedAndTheSpareIsGoneAfterDisposal()
    {
        if (!OperatingSystem.IsLinux())
        {
            Assert.Ignore("Preallocated space is unwritten (and segments are prepared) on Linux only.");
        }

        string directory = Path.Combine(Path.GetTempPath(), $"embeddedraft-wal-prepared-{Environment.ProcessId}-{Guid.NewGuid():N}");
        var random = new Random(15);
        TestContext.Out.WriteLine("seed 15");
        try
        {
            var options = WalTestKit.SmallSegments(segmentSizeBytes: 64 * 1024);
            var appended = new List<(ulong Index, byte[] Payload)>();
            await using (var log = WriteAheadLog.Open(PhysicalFileSystem.Instance, directory, options))
            {
                Assert.That(log.SegmentPreparer, Is.Not.Null);
                for (ulong index = 1; index <= 400; index++)
                {
                    if (index % 50 == 0)
                    {
                        await WaitForSpareAsync(log);
                    }

                    var payload = WalTestKit.Payload(random, 300, 900);
                    await log.AppendAsync(1, payload, index, sync: index % 7 == 0);
                    appended.Add((index, payload));
                }

                await log.SyncAsync();
                Assert.That(log.SegmentPaths, Has.Count.GreaterThan(3));
                AssertRecords(WalTestKit.ReadAll(log), appended);
            }

            Assert.That(File.Exists(Path.Combine(directory, WalSegmentPreparer.SpareFileName)), Is.False, "disposal deletes the spare");
            await using var reopened = WriteAheadLog.Open(PhysicalFileSystem.Instance, directory, options);
            AssertRecords(WalTestKit.ReadAll(reopened), appended);
            foreach (string path in reopened.SegmentPaths)
            {
                Assert.That(new FileInfo(path).Length, Is.EqualTo(options.SegmentSizeBytes), path);
            }
        }
        finally
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
    }

    private static Task WaitForSpareAsync(WriteAheadLog log) =>
        Waits.UntilAsync(() => log.SegmentPreparer!.HasSpare || log.SegmentPreparer.Failed, "the preparer to have a spare ready");

    private static void AssertRecords(List<StoredRecord> records, List<(ulong Index, byte[] Payload)> appended)
    {
        Assert.That(records, Has.Count.EqualTo(appended.Count));
        for (int i = 0; i < appended.Count; i++)
        {
            Assert.That(records[i].Index, Is.EqualTo(appended[i].Index), $"record {i}");
            Assert.That(records[i].Payload, Is.EqualTo(appended[i].Payload), $"record {i}");
        }
    }
}
