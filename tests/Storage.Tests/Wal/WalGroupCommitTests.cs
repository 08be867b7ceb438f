using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Storage.Tests.Wal;

/// <summary>Concurrent synced appenders share writes and flushes.</summary>
public sealed class WalGroupCommitTests
{
    [Test]
    public async Task AppendsThatArriveDuringAFlushShareTheNextWriteAndFlush()
    {
        var fs = new FaultInjectingFileSystem(70);
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments(segmentSizeBytes: 1024 * 1024));
        // Hold the writer inside its first flush until 99 more appends have queued behind it.
        using var hold = new FirstFlushHold(fs);
        long flushesBefore = fs.FlushCount;
        long writesBefore = fs.WriteCount;

        // The first append finds the writer idle and commits inline, on its own thread: not this one.
        var first = Task.Run(() => log.AppendAsync(1, new byte[100], 1).AsTask());
        hold.Entered.WaitOrFail("the first flush to start");
        var rest = Enumerable.Range(2, 99).Select(i => log.AppendAsync(1, new byte[100], (ulong)i).AsTask()).ToList();
        hold.Release.Set();
        first.WaitOrFail("the first (inline) append to complete");
        Task.WhenAll(rest).WaitOrFail("the 99 queued appends to complete");

        Assert.That(fs.FlushCount - flushesBefore, Is.EqualTo(2));
        Assert.That(fs.WriteCount - writesBefore, Is.EqualTo(2));
        Assert.That(WalTestKit.ReadAll(log).Select(r => r.Index), Is.EqualTo(Enumerable.Range(1, 100).Select(i => (ulong)i)));
    }

    [Test]
    public async Task ManyConcurrentAppendersCostFarFewerFlushesThanAppends()
    {
        var fs = new FaultInjectingFileSystem(71);
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, new WalOptions { SegmentSizeBytes = 4 * 1024 * 1024 });
        long flushesBefore = fs.FlushCount;
        // The first flush waits until the test has queued the whole burst, so batching does not depend on timing.
        using var hold = new FirstFlushHold(fs);
        var appends = new List<Task<WalPosition>> { Task.Run(() => log.AppendAsync(1, new byte[1024], 1).AsTask()) };
        hold.Entered.WaitOrFail("the first flush to start");
        for (int i = 1; i < 1000; i++)
        {
            appends.Add(log.AppendAsync(1, new byte[1024], (ulong)i + 1).AsTask());
        }

        hold.Release.Set();
        Task.WhenAll(appends).WaitOrFail("the 1000 appends to complete");
        Assert.That(fs.FlushCount - flushesBefore, Is.LessThanOrEqualTo(3), "1000 synced appends");
        Assert.That(appends.Select(a => a.Result), Is.Ordered);
    }

    [Test]
    public async Task ALoneSyncedAppendCostsOneWriteAndOneFlushAndCompletesSynchronously()
    {
        var fs = new FaultInjectingFileSystem(73);
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, new WalOptions { SegmentSizeBytes = 1024 * 1024 });
        log.AppendAsync(1, new byte[10], 1).AsTask().WaitOrFail("the first append to complete");
        log.WhenWriterIdleAsync().WaitOrFail("the writer to go idle");
        for (ulong i = 2; i <= 20; i++)
        {
            long writes = fs.WriteCount;
            long flushes = fs.FlushCount;
            var pending = log.AppendAsync(1, new byte[1024], i);
            Assert.That(pending.IsCompletedSuccessfully, Is.True, "the idle writer lets the appender commit inline");
            Assert.That((fs.WriteCount - writes, fs.FlushCount - flushes), Is.EqualTo((1L, 1L)));
            Assert.That(log.DurablePosition, Is.EqualTo(log.EndPosition));
        }
    }

    [Test]
    public async Task EveryWaiterOfALargeGroupResumesOnAPoolThreadNeverOnTheWriter()
    {
        var fs = new FaultInjectingFileSystem(74);
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, new WalOptions { SegmentSizeBytes = 4 * 1024 * 1024 });
        using var hold = new FirstFlushHold(fs);
        var first = Task.Run(() => log.AppendAsync(1, new byte[100], 1).AsTask());
        hold.Entered.WaitOrFail("the first flush to start");
        var resumedOn = Enumerable.Range(2, 300).Select(i => AppendThenObserveAsync(log, (ulong)i, () => Thread.CurrentThread)).ToList();
        hold.Release.Set();
        first.WaitOrFail("the first (inline) append to complete");
        var threads = Task.WhenAll(resumedOn).ResultOrFail("the 300 queued appends to complete");

        Assert.That(threads.Select(t => t.Name), Has.None.EqualTo("EmbeddedRaft WAL writer").And.None.EqualTo("EmbeddedRaft WAL syncer"));
        Assert.That(threads.Select(t => t.IsThreadPoolThread), Has.All.True);
    }

    [Test]
    public async Task ALoneAppenderCommitsInlineAgainAfterABurst()
    {
        var fs = new FaultInjectingFileSystem(75);
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, new WalOptions { SegmentSizeBytes = 4 * 1024 * 1024 });
        using (var hold = new FirstFlushHold(fs))
        {
            var first = Task.Run(() => log.AppendAsync(1, new byte[100], 1).AsTask());
            hold.Entered.WaitOrFail("the first flush to start");
            var burst = Enumerable.Range(2, 99).Select(i => log.AppendAsync(1, new byte[100], (ulong)i).AsTask()).ToList();
            hold.Release.Set();
            first.WaitOrFail("the first (inline) append to complete");
            Task.WhenAll(burst).WaitOrFail("the 99 queued appends to complete");
        }

        log.WhenWriterIdleAsync().WaitOrFail("the writer to go idle");

        // The group before it had 99 waiters: the writer thread commits this one, and, seeing it
        // alone, lets the next lone append commit on its own thread again.
        var writers = new List<string?>();
        fs.BeforeEntering = (kind, _) =>
        {
            if (kind == FaultOperationKind.Write)
            {
                lock (writers)
                {
                    writers.Add(Thread.CurrentThread.Name);
                }
            }
        };
        log.AppendAsync(1, new byte[100], 101).AsTask().WaitOrFail("the append after the burst to complete");
        log.WhenWriterIdleAsync().WaitOrFail("the writer to go idle");
        var lone = log.AppendAsync(1, new byte[100], 102);
        Assert.That(lone.IsCompletedSuccessfully, Is.True, "a lone append after a lone group commits inline");
        lone.AsTask().WaitOrFail("the lone append to complete");
        Assert.That(writers, Is.EqualTo(new[] { "EmbeddedRaft WAL writer", Thread.CurrentThread.Name }));
        Assert.That(WalTestKit.ReadAll(log).Select(r => r.Index), Is.EqualTo(Enumerable.Range(1, 102).Select(i => (ulong)i)));
    }

    /// <summary>Appends a synced record and, once it is durable, returns what <paramref name="observe"/> sees where the append resumed.</summary>
    private static async Task<T> AppendThenObserveAsync<T>(WriteAheadLog log, ulong index, Func<T> observe)
    {
        await log.AppendAsync(1, new byte[100], index);
        return observe();
    }

    [Test]
    public async Task TheNextGroupIsWrittenWhileThePreviousOneFlushesAndCompletesOnlyAfterAFlushOfItsOwn()
    {
        var fs = new FaultInjectingFileSystem(76);
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, new WalOptions { SegmentSizeBytes = 4 * 1024 * 1024 });
        MakeConcurrentAsync(log, fs).WaitOrFail("the three setup appends to complete");

        using var flushEntered = new ManualResetEventSlim();
        using var releaseFlush = new ManualResetEventSlim();
        fs.BeforeEntering = (kind, _) =>
        {
            if (kind == FaultOperationKind.Flush && !flushEntered.IsSet)
            {
                flushEntered.Set();
                releaseFlush.WaitOrFail("the test to release the held flush");
            }
        };
        long flushesBefore = fs.FlushCount;
        var first = log.AppendAsync(1, new byte[100], 4).AsTask();
        Task<long> second;
        try
        {
            flushEntered.WaitOrFail("the first group's flush to start");
            long writesDuringFlush = fs.WriteCount;
            second = AppendThenObserveAsync(log, 5, () => fs.FlushCount);
            SpinWait.SpinUntil(() => fs.WriteCount > writesDuringFlush, TimeSpan.FromSeconds(10));

            Assert.That(fs.WriteCount, Is.EqualTo(writesDuringFlush + 1), "the second group is written while the first one's flush is still running");
            Assert.That(second.IsCompleted, Is.False);
        }
        finally
        {
            releaseFlush.Set(); // a failed assertion must not leave the syncer held (disposal would wait for it)
        }

        first.WaitOrFail("the first group to complete");
        long flushesWhenSecondCompleted = second.ResultOrFail("the second group to complete");
        Assert.That(flushesWhenSecondCompleted - flushesBefore, Is.EqualTo(2), "the flush that was running when it was written does not count for it");
        Assert.That(WalTestKit.ReadAll(log).Select(r => r.Index), Is.EqualTo(Enumerable.Range(1, 5).Select(i => (ulong)i)));
    }

    /// <summary>Commits indexes 1-3 so that the last group has two waiters: later appends go to the writer and syncer threads, not inline.</summary>
    private static async Task MakeConcurrentAsync(WriteAheadLog log, FaultInjectingFileSystem fs)
    {
        using (var hold = new FirstFlushHold(fs))
        {
            var inline = Task.Run(() => log.AppendAsync(1, new byte[100], 1).AsTask());
            hold.Entered.WaitOrFail("the first flush to start");
            var pair = new[] { log.AppendAsync(1, new byte[100], 2).AsTask(), log.AppendAsync(1, new byte[100], 3).AsTask() };
            hold.Release.Set();
            inline.WaitOrFail("the inline append to complete");
            Task.WhenAll(pair).WaitOrFail("the two queued appends to complete");
        }

        log.WhenWriterIdleAsync().WaitOrFail("the writer to go idle");
    }

    [Test]
    public async Task UnsyncedAppendsAllocateNothingOnTheAppendersThread()
    {
        var fs = new FaultInjectingFileSystem(72);
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, new WalOptions { SegmentSizeBytes = 64 * 1024 * 1024 });
        var payload = new byte[1024];
        // Warm up: fill and write a few group-commit buffers so the pools hold batches.
        for (int i = 0; i < 4000; i++)
        {
            await log.AppendAsync(1, payload, sync: false);
        }

        log.SyncAsync().AsTask().WaitOrFail("the warm-up sync to complete");

        int notCompleted = 0;
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            var pending = log.AppendAsync(1, payload, sync: false);
            notCompleted += pending.IsCompletedSuccessfully ? 0 : 1;
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(notCompleted, Is.Zero, "unsynced appends complete synchronously");
        Assert.That(allocated, Is.LessThan(1000), $"{allocated} bytes for 1000 appends");
    }

    /// <summary>Makes the first flush wait until <see cref="Release"/> is set, so the appends issued meanwhile form one group.</summary>
    private sealed class FirstFlushHold : IDisposable
    {
        private readonly FaultInjectingFileSystem _fs;

        public FirstFlushHold(FaultInjectingFileSystem fs)
        {
            _fs = fs;
            fs.FailWhen = op =>
            {
                if (op.Kind == FaultOperationKind.Flush && !Entered.IsSet)
                {
                    Entered.Set();
                    Release.WaitOrFail("the test to release the held flush");
                }

                return false;
            };
        }

        public ManualResetEventSlim Entered { get; } = new();

        public ManualResetEventSlim Release { get; } = new();

        public void Dispose()
        {
            _fs.FailWhen = null;
            Release.Set();
            Entered.Dispose();
            Release.Dispose();
        }
    }
}
