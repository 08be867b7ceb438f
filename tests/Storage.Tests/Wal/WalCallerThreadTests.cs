using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Storage.Tests.Wal;

/// <summary><see cref="WalThreading.CallerThread"/>: no background threads; every write and flush runs inside the call that needs it.</summary>
public sealed class WalCallerThreadTests
{
    private static readonly WalOptions s_options = WalTestKit.SmallSegments(segmentSizeBytes: 16 * 1024) with { Threading = WalThreading.CallerThread };

    [Test]
    public void EveryWriteAndFlushRunsOnTheCallingThreadAndCompletesBeforeTheCallReturns()
    {
        var fs = new FaultInjectingFileSystem(80);
        var threads = new HashSet<int>();
        fs.BeforeEntering = (_, _) =>
        {
            lock (threads)
            {
                threads.Add(Environment.CurrentManagedThreadId);
            }
        };
        var log = WriteAheadLog.Open(fs, WalTestKit.Directory, s_options);
        for (ulong i = 1; i <= 60; i++)
        {
            // 60 records of 700 bytes cut several 16 KiB segments.
            var append = log.AppendAsync(1, new byte[700], i, sync: i % 3 == 0);
            Assert.That(append.IsCompletedSuccessfully, Is.True, $"append {i} completes before it returns");
            if (i % 3 == 0)
            {
                Assert.That(log.DurablePosition, Is.EqualTo(log.EndPosition), $"synced append {i} is durable when it returns");
            }
        }

        log.Dispose();
        Assert.That(threads, Is.EqualTo(new[] { Environment.CurrentManagedThreadId }));

        using var reopened = WriteAheadLog.Open(fs, WalTestKit.Directory, s_options);
        Assert.That(WalTestKit.ReadAll(reopened).Select(r => r.Index), Is.EqualTo(Enumerable.Range(1, 60).Select(i => (ulong)i)));
    }

    [Test]
    public void UnsyncedAppendsStayInMemoryUntilASyncOnTheCallersThread()
    {
        var fs = new FaultInjectingFileSystem(81);
        using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, s_options);
        long writes = fs.WriteCount;
        for (ulong i = 1; i <= 5; i++)
        {
            Assert.That(log.AppendAsync(1, new byte[100], i, sync: false).AsTask().IsCompletedSuccessfully, Is.True);
        }

        Assert.That(fs.WriteCount, Is.EqualTo(writes), "nothing writes unsynced appends in the background");
        var sync = log.SyncAsync();
        Assert.That(sync.IsCompletedSuccessfully, Is.True, "the sync completes before it returns");
        Assert.That(fs.WriteCount - writes, Is.EqualTo(1), "one write for the five records");
        Assert.That(log.DurablePosition, Is.EqualTo(log.EndPosition));
    }

    [Test]
    public void BackPressureDrainsOnTheAppendersThread()
    {
        var fs = new FaultInjectingFileSystem(82);
        var options = s_options with { SegmentSizeBytes = 1024 * 1024, WriteBufferSizeBytes = 4096, MaxBufferedBytes = 8192 };
        using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, options);
        long flushes = fs.FlushCount;
        for (ulong i = 1; i <= 100; i++)
        {
            Assert.That(log.AppendAsync(1, new byte[500], i, sync: false).AsTask().IsCompletedSuccessfully, Is.True, $"append {i} never waits for a writer");
        }

        // 100 frames of 528 bytes exceed 8 KiB of buffered records several times over.
        Assert.That(fs.FlushCount - flushes, Is.InRange(5, 7), "each drain writes and flushes what was buffered");
        Assert.That(WalTestKit.ReadAll(log), Has.Count.LessThan(100).And.Count.GreaterThan(80), "only what was drained is written");
    }

    [Test]
    public void TheSameCallsGiveTheSameFileSystemOperations()
    {
        static (long Operations, long Writes, long Flushes, List<ulong> Indexes) Run()
        {
            var fs = new FaultInjectingFileSystem(83);
            var random = new Random(83);
            var log = WriteAheadLog.Open(fs, WalTestKit.Directory, s_options);
            for (ulong i = 1; i <= 200; i++)
            {
                Assert.That(log.AppendAsync(1, WalTestKit.Payload(random, 1, 900), i, sync: random.Next(4) == 0).AsTask().IsCompletedSuccessfully, Is.True);
            }

            log.Dispose();
            using var reopened = WriteAheadLog.Open(fs, WalTestKit.Directory, s_options);
            return (fs.OperationCount, fs.WriteCount, fs.FlushCount, WalTestKit.ReadAll(reopened).Select(r => r.Index).ToList());
        }

        TestContext.Out.WriteLine("seed 83 (file system and payloads)");
        var first = Run();
        var second = Run();
        Assert.That(second.Operations, Is.EqualTo(first.Operations));
        Assert.That((second.Writes, second.Flushes), Is.EqualTo((first.Writes, first.Flushes)));
        Assert.That(first.Indexes, Is.EqualTo(Enumerable.Range(1, 200).Select(i => (ulong)i)));
    }

    [Test]
    public void ConcurrentCallersTakeTurnsAndEachSyncedAppendIsDurableWhenItReturns()
    {
        const int Appenders = 4;
        const int AppendsEach = 60;
        var fs = new FaultInjectingFileSystem(84);
        var appenderThreads = new HashSet<int>();
        var fileSystemThreads = new HashSet<int>();
        fs.BeforeEntering = (_, _) =>
        {
            lock (fileSystemThreads)
            {
                fileSystemThreads.Add(Environment.CurrentManagedThreadId);
            }
        };
        var log = WriteAheadLog.Open(fs, WalTestKit.Directory, s_options);
        using var start = new Barrier(Appenders);
        // Dedicated threads (the callers block while another one commits); a failed assertion faults its task.
        var appenders = Enumerable.Range(0, Appenders).Select(appender => Task.Factory.StartNew(() =>
        {
            lock (appenderThreads)
            {
                appenderThreads.Add(Environment.CurrentManagedThreadId);
            }

            start.SignalAndWait();
            for (int i = 0; i < AppendsEach; i++)
            {
                // 700-byte records: the four appenders cut several 16 KiB segments between them.
                bool sync = i % 2 == 0;
                var append = log.AppendAsync((byte)(appender + 1), new byte[700], 0, sync);
                Assert.That(append.IsCompletedSuccessfully, Is.True, $"appender {appender}, append {i} completes before it returns");
                if (sync)
                {
                    Assert.That(log.DurablePosition, Is.GreaterThan(append.Result), $"appender {appender}'s synced append {i} is durable when it returns");
                }
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();
        Task.WhenAll(appenders).WaitOrFail("the appenders to finish");
        log.Dispose();

        fileSystemThreads.Remove(Environment.CurrentManagedThreadId); // Open and Dispose
        Assert.That(fileSystemThreads, Is.SubsetOf(appenderThreads), "only the callers touch the file system");
        using var reopened = WriteAheadLog.Open(fs, WalTestKit.Directory, s_options);
        var records = WalTestKit.ReadAll(reopened);
        Assert.That(records, Has.Count.EqualTo(Appenders * AppendsEach), "every append, synced or not, survives a clean close");
        Assert.That(records.GroupBy(r => r.Type).Select(g => g.Count()), Is.All.EqualTo(AppendsEach));
    }

    [Test]
    public void OptionsBindTheThreadingModeAndRefuseUndefinedValues()
    {
        Assert.That(WalOptions.Default.Threading, Is.EqualTo(WalThreading.BackgroundThreads));
        Assert.That(() => new WalOptions { Threading = (WalThreading)7 }, Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("Threading"));
    }
}
