using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Storage.Tests.Wal;

/// <summary>
/// Crash at every mutating file-system call in turn: after restart and reopen, the log holds a
/// prefix of what was appended that contains every record whose synced append returned, and it
/// keeps working. Seeds: WAL_SEED=N for one, STORAGE_SOAK_SEEDS=N for more.
/// </summary>
public sealed class WalCrashTests
{
    private const int RecordsPerRun = 40;

    private static readonly WalOptions s_options = new() { SegmentSizeBytes = 4096, MaxRecordSizeBytes = 1024, WriteBufferSizeBytes = 4096, MaxBufferedBytes = 16 * 1024 };

    private static IEnumerable<int> SequentialSeeds() => WalTestKit.Seeds(1000, 40);

    private static IEnumerable<int> ConcurrentSeeds() => WalTestKit.Seeds(2000, 10);

    private static IEnumerable<int> CallerThreadSeeds() => WalTestKit.Seeds(3000, 20);

    private static IEnumerable<int> LargeSegmentSeeds() => WalTestKit.Seeds(3500, 10);

    [TestCaseSource(nameof(CallerThreadSeeds))]
    public Task WithoutBackgroundThreadsACrashAfterAnyOperationLeavesAPrefixHoldingEverySyncedRecord(int seed) =>
        CrashAfterEveryOperationAsync(seed, s_options with { Threading = WalThreading.CallerThread }, "caller thread, ", everyPointReached: true);

    /// <remarks>
    /// 128 KiB segments: the first small write carries 64 KiB of zeros that stop short of the
    /// segment's end, and every later record is written over them (with 4 KiB segments the zeros
    /// always run to the room kept for the sync mark and trailer).
    /// </remarks>
    [TestCaseSource(nameof(LargeSegmentSeeds))]
    public Task InALargeSegmentWhereSmallWritesCarryZerosAheadACrashAfterAnyOperationLeavesAPrefixHoldingEverySyncedRecord(int seed) =>
        CrashAfterEveryOperationAsync(seed, s_options with { SegmentSizeBytes = 128 * 1024 }, "128 KiB segments, ", everyPointReached: false);

    [TestCaseSource(nameof(SequentialSeeds))]
    public Task ACrashAfterAnyOperationLeavesAPrefixHoldingEverySyncedRecord(int seed) =>
        CrashAfterEveryOperationAsync(seed, s_options, "", everyPointReached: false);

    [TestCaseSource(nameof(ConcurrentSeeds))]
    public async Task ACrashUnderConcurrentAppendersLeavesAPrefixHoldingEverySyncedRecord(int seed)
    {
        // Concurrent appenders make the batching, and so the exact operation a crash lands on,
        // depend on thread timing; the seed fixes the records and the crash outcomes, and the
        // property is checked whatever the schedule.
        TestContext.Out.WriteLine($"seed {seed} ({WalTestKit.Reproduce(seed)})");
        var plan = Plan.Create(seed);
        var clean = new FaultInjectingFileSystem(seed);
        await RunConcurrentAsync(clean, plan);
        long operations = clean.OperationCount;
        var stats = new Stats();
        for (long crashAt = 1; crashAt <= operations + 5; crashAt++)
        {
            var fs = new FaultInjectingFileSystem(seed * 7919 + (int)crashAt) { CrashAfterOperation = crashAt };
            var (outcome, order) = await RunConcurrentAsync(fs, plan);
            string where = $"seed {seed}, concurrent, crash after operation {crashAt}; {WalTestKit.Reproduce(seed)}";
            await VerifyAfterRestartAsync(fs, order, outcome, new Random(seed ^ (int)crashAt), where, stats);
        }

        TestContext.Out.WriteLine($"{operations} operations in the clean run; {stats}");
    }

    /// <summary>
    /// Runs the seed's plan once without a crash, then once per operation of that clean run with a
    /// crash right after it, restarting and checking the log each time (<see cref="VerifyAfterRestartAsync"/>).
    /// On the caller's thread alone the runs repeat the clean one's operations exactly, so
    /// <paramref name="everyPointReached"/> demands that every crash point is reached; with the
    /// background threads a run may make fewer operations (<see cref="CrashPointReached"/>).
    /// </summary>
    private static async Task CrashAfterEveryOperationAsync(int seed, WalOptions options, string label, bool everyPointReached)
    {
        TestContext.Out.WriteLine($"seed {seed} ({WalTestKit.Reproduce(seed)})");
        var plan = Plan.Create(seed);
        var clean = new FaultInjectingFileSystem(seed);
        var cleanOutcome = await RunSequentialAsync(clean, plan, options);
        Assert.That(cleanOutcome.Acknowledged, Is.EqualTo(plan.Steps.Count), "the workload completes without a crash");
        long operations = clean.OperationCount;
        var stats = new Stats();
        for (long crashAt = 1; crashAt <= operations; crashAt++)
        {
            var fs = new FaultInjectingFileSystem(seed * 7919 + (int)crashAt) { CrashAfterOperation = crashAt };
            var outcome = await RunSequentialAsync(fs, plan, options);
            string where = $"seed {seed}, {label}crash after operation {crashAt} of {operations}; {WalTestKit.Reproduce(seed)}";
            if (everyPointReached)
            {
                Assert.That(fs.IsCrashed, Is.True, $"every operation of the clean run is reached again; {where}");
            }
            else if (!CrashPointReached(fs, outcome, plan, crashAt, where, stats))
            {
                continue;
            }

            await VerifyAfterRestartAsync(fs, plan.Steps, outcome, new Random(seed ^ (int)crashAt), where, stats, options);
        }

        if (!everyPointReached)
        {
            AssertMostCrashPointsReached(operations, stats, seed);
        }

        TestContext.Out.WriteLine($"{operations} crash points; {stats}");
    }

    /// <summary>
    /// Whether a crash run reached its crash point. With the writer and syncer threads, how a run of
    /// appends is cut into writes depends on timing: a batch sealed full may be written alone or in
    /// one gather write with the next (seed 310132 of session 31's soak made 33 operations clean and
    /// 32 in a crash run). So a run may make fewer operations than the clean one and never reach a
    /// crash point near the end; such a run must have made fewer operations than the crash point and
    /// completed the whole workload, and the point is counted, not checked (see
    /// <see cref="AssertMostCrashPointsReached"/>).
    /// </summary>
    private static bool CrashPointReached(FaultInjectingFileSystem fs, Outcome outcome, Plan plan, long crashAt, string where, Stats stats)
    {
        if (fs.IsCrashed)
        {
            return true;
        }

        Assert.That(fs.OperationCount, Is.LessThan(crashAt), $"a run that did not crash made fewer operations than its crash point; {where}");
        Assert.That(outcome.Acknowledged, Is.EqualTo(plan.Steps.Count), $"a run that did not crash completed the workload; {where}");
        stats.CrashPointsNotReached++;
        return false;
    }

    /// <summary>Only a few crash points may fall past a shorter run: the test must still crash at nearly every operation.</summary>
    private static void AssertMostCrashPointsReached(long operations, Stats stats, int seed) =>
        Assert.That(stats.CrashPointsNotReached, Is.LessThanOrEqualTo(Math.Max(2, operations / 10)), $"crash points past a shorter run, of {operations}; {WalTestKit.Reproduce(seed)}");

    private static async Task<Outcome> RunSequentialAsync(FaultInjectingFileSystem fs, Plan plan, WalOptions? options = null)
    {
        var outcome = new Outcome();
        WriteAheadLog? log = null;
        try
        {
            log = WriteAheadLog.Open(fs, WalTestKit.Directory, options ?? s_options);
            for (int i = 0; i < plan.Steps.Count; i++)
            {
                var step = plan.Steps[i];
                // Counted before the call: a synced append that fails while writing throws from the
                // call itself, and its record may still have reached the disk.
                outcome.Accepted = i + 1;
                await log.AppendAsync(step.Type, step.Payload, step.Index, step.Sync);
                if (step.Sync)
                {
                    outcome.Acknowledged = i + 1;
                }

                if (step.SyncAfter)
                {
                    await log.SyncAsync();
                    outcome.Acknowledged = i + 1;
                }

                await log.WhenWriterIdleAsync();
            }

            await log.SyncAsync();
            outcome.Acknowledged = plan.Steps.Count;
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

        return outcome;
    }

    private static async Task<(Outcome Outcome, List<Step> Order)> RunConcurrentAsync(FaultInjectingFileSystem fs, Plan plan)
    {
        var outcome = new Outcome();
        var order = new List<Step>();
        var acknowledged = new HashSet<Step>();
        WriteAheadLog log;
        try
        {
            log = WriteAheadLog.Open(fs, WalTestKit.Directory, s_options);
        }
        catch (SimulatedCrashException)
        {
            return (outcome, order);
        }

        async Task AppenderAsync(int worker)
        {
            for (int i = worker; i < plan.Steps.Count; i += 4)
            {
                var step = plan.Steps[i];
                ValueTask<WalPosition> pending;
                lock (order)
                {
                    // Accepting under the test's lock records the order the log accepted them in.
                    order.Add(step);
                    pending = log.AppendAsync(step.Type, step.Payload, step.Index, step.Sync);
                }

                await pending;
                if (step.Sync)
                {
                    lock (order)
                    {
                        acknowledged.Add(step);
                    }
                }
            }
        }

        try
        {
            await Task.WhenAll(Enumerable.Range(0, 4).Select(w => Task.Run(() => AppenderAsync(w)))).WithinLimitAsync("the four appenders to finish or crash");
            await log.SyncAsync();
            lock (order)
            {
                acknowledged.UnionWith(order);
            }
        }
        catch (Exception e) when (e is SimulatedCrashException or IOException && fs.IsCrashed)
        {
        }
        finally
        {
            await log.DisposeAsync();
        }

        outcome.Accepted = order.Count;
        outcome.Acknowledged = acknowledged.Count == 0 ? 0 : acknowledged.Max(s => order.IndexOf(s)) + 1;
        return (outcome, order);
    }

    /// <summary>Restart (sometimes crashing again during recovery), reopen, check the prefix, and check the log still appends and reopens.</summary>
    private static async Task VerifyAfterRestartAsync(FaultInjectingFileSystem fs, List<Step> order, Outcome outcome, Random random, string where, Stats stats, WalOptions? options = null)
    {
        fs.Restart();
        if (random.Next(3) == 0)
        {
            // A crash while recovering (while repairing a torn tail, say) must be recoverable too.
            fs.CrashAfterOperation = random.Next(1, 6);
            try
            {
                var log = WriteAheadLog.Open(fs, WalTestKit.Directory, options ?? s_options);
                await log.DisposeAsync();
            }
            catch (SimulatedCrashException)
            {
                stats.CrashesDuringRecovery++;
            }

            fs.CrashAfterOperation = null;
            fs.Restart();
        }

        List<StoredRecord> records;
        await using (var log = OpenOrFail(fs, where, options))
        {
            records = ReadOrFail(log, where);
            stats.TornTailsRepaired += log.TailRepair is null ? 0 : 1;
            stats.UnsyncedRecordsLost += outcome.Accepted - records.Count;
            stats.UnacknowledgedRecordsKept += records.Count - outcome.Acknowledged;
            Assert.That(records.Count, Is.InRange(outcome.Acknowledged, outcome.Accepted), $"records kept vs acknowledged..accepted; {where}");
            for (int i = 0; i < records.Count; i++)
            {
                var expected = order[i];
                Assert.That(records[i].Type == expected.Type && records[i].Index == expected.Index && records[i].Payload.AsSpan().SequenceEqual(expected.Payload), Is.True, $"record {i} is not the {i}-th appended; {where}");
            }

            await log.AppendAsync(200, new byte[] { 42 }, 9999);
        }

        await using var reopened = OpenOrFail(fs, where, options);
        var after = ReadOrFail(reopened, where);
        Assert.That(after, Has.Count.EqualTo(records.Count + 1), $"an append after recovery survives a reopen; {where}");
        Assert.That(after[^1].Index, Is.EqualTo(9999UL), where);
    }

    private static List<StoredRecord> ReadOrFail(WriteAheadLog log, string where)
    {
        try
        {
            return WalTestKit.ReadAll(log);
        }
        catch (CorruptionException e)
        {
            Assert.Fail($"reading after recovery failed: {e.Message}; {where}");
            throw;
        }
    }

    private static WriteAheadLog OpenOrFail(FaultInjectingFileSystem fs, string where, WalOptions? options)
    {
        try
        {
            return WriteAheadLog.Open(fs, WalTestKit.Directory, options ?? s_options);
        }
        catch (Exception e)
        {
            Assert.Fail($"reopen failed: {e}; {where}");
            throw;
        }
    }

    private sealed class Stats
    {
        public int TornTailsRepaired { get; set; }

        public int CrashesDuringRecovery { get; set; }

        public int UnsyncedRecordsLost { get; set; }

        public int UnacknowledgedRecordsKept { get; set; }

        public int CrashPointsNotReached { get; set; }

        public override string ToString() =>
            $"torn tails repaired {TornTailsRepaired}, crashes during recovery {CrashesDuringRecovery}, accepted-but-lost records {UnsyncedRecordsLost}, unacknowledged-but-kept records {UnacknowledgedRecordsKept}, crash points past a shorter run {CrashPointsNotReached}";
    }

    private sealed class Outcome
    {
        /// <summary>Records whose append was called: the log may hold at most these.</summary>
        public int Accepted { get; set; }

        /// <summary>Records before a synced append or sync that returned: the log must hold at least these.</summary>
        public int Acknowledged { get; set; }
    }

    internal sealed record Step(byte Type, ulong Index, byte[] Payload, bool Sync, bool SyncAfter);

    private sealed record Plan(List<Step> Steps)
    {
        public static Plan Create(int seed)
        {
            var random = new Random(seed);
            var steps = new List<Step>();
            for (int i = 1; i <= RecordsPerRun; i++)
            {
                int roll = random.Next(10);
                var payload = WalTestKit.Payload(random, 0, roll == 0 ? 1024 : 600);
                steps.Add(new Step((byte)random.Next(1, 256), random.Next(8) == 0 ? 0 : (ulong)i, payload, Sync: random.Next(3) == 0, SyncAfter: random.Next(12) == 0));
            }

            return new Plan(steps);
        }
    }
}
