using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Storage.Tests.Wal;

/// <summary>
/// A released segment is kept as a spare and the next cut reuses its file (zeroed in place, its
/// blocks kept) instead of deleting it and allocating a fresh one; the log reads, reopens and
/// survives crashes exactly as with fresh segments. Seeds: WAL_SEED=N for one, STORAGE_SOAK_SEEDS=N for more.
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
    public async Task AFileSystemThatCannotZeroInPlaceGetsFreshSegmentsAndTheSpareIsDeleted()
    {
        var fs = new FaultInjectingFileSystem(72) { SupportsZeroRange = false };
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments());
        ulong next = 1;
        for (; next <= 60; next++)
        {
            await log.AppendAsync(1, new byte[400], next);
        }

        Assert.That(log.ReleaseBefore(40), Is.GreaterThan(0));
        int segments = log.SegmentPaths.Count;
        while (log.SegmentPaths.Count == segments)
        {
            await log.AppendAsync(1, new byte[400], next++);
        }

        Assert.That(fs.FileExists(SparePath), Is.False);
        Assert.That(fs.AllFiles().Any(p => p.EndsWith(".tmp", StringComparison.Ordinal)), Is.False, "no temporary is left behind");
        Assert.That(WalTestKit.ReadAll(log, fromIndex: 40)[^1].Index, Is.EqualTo(next - 1));
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
    public async Task ACrashAfterAnyOperationWhileSegmentsAreReusedLeavesEverySyncedRecord(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} ({WalTestKit.Reproduce(seed)})");
        var options = WalTestKit.SmallSegments() with { Threading = WalThreading.CallerThread };
        var steps = Plan(seed);
        var clean = new FaultInjectingFileSystem(seed);
        var cleanOutcome = await RunAsync(clean, steps, options);
        Assert.That(cleanOutcome.Acknowledged, Is.EqualTo(steps.Count), "the workload completes without a crash");
        Assert.That(cleanOutcome.Kept, Is.GreaterThan(0), "the workload keeps released segments for its cuts to reuse");
        long operations = clean.OperationCount;
        for (long crashAt = 1; crashAt <= operations; crashAt++)
        {
            var fs = new FaultInjectingFileSystem(seed * 7919 + (int)crashAt) { CrashAfterOperation = crashAt };
            var outcome = await RunAsync(fs, steps, options);
            string where = $"seed {seed}, crash after operation {crashAt} of {operations}; {WalTestKit.Reproduce(seed)}";
            Assert.That(fs.IsCrashed, Is.True, where);
            fs.Restart(dropUnflushed: new Random(seed ^ (int)crashAt).Next(2) == 0);
            List<StoredRecord> records;
            try
            {
                await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
                records = WalTestKit.ReadAll(log);
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

        TestContext.Out.WriteLine($"{operations} crash points, {cleanOutcome.Kept} segments kept for reuse in the clean run");
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
