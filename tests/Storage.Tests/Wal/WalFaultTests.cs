using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Storage.Tests.Wal;

/// <summary>After a failed write or flush the log refuses everything with <see cref="StorageFaultedException"/> until reopened.</summary>
public sealed class WalFaultTests
{
    [TestCase(FaultOperationKind.Flush, WalThreading.BackgroundThreads)]
    [TestCase(FaultOperationKind.Write, WalThreading.BackgroundThreads)]
    [TestCase(FaultOperationKind.Flush, WalThreading.CallerThread)]
    [TestCase(FaultOperationKind.Write, WalThreading.CallerThread)]
    public async Task AFailedWriteOrFlushFaultsTheLogUntilReopened(FaultOperationKind failing, WalThreading threading)
    {
        var fs = new FaultInjectingFileSystem(90);
        var log = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments(segmentSizeBytes: 64 * 1024) with { Threading = threading });
        try
        {
            for (ulong i = 1; i <= 5; i++)
            {
                await log.AppendAsync(1, new byte[] { (byte)i }, i);
            }

            await log.WhenWriterIdleAsync();
            fs.FailWhen = op => op.Kind == failing && op.Path.EndsWith(".wal", StringComparison.Ordinal);

            // The append whose own write or flush failed sees the file system's error itself.
            var first = Assert.ThrowsAsync<IOException>(async () => await log.AppendAsync(1, new byte[] { 6 }, 6));
            Assert.That(first, Is.Not.TypeOf<StorageFaultedException>());
            fs.FailWhen = null;

            // Every later call refuses, naming the log and carrying the first failure, though the disk works again.
            var append = Assert.ThrowsAsync<StorageFaultedException>(async () => await log.AppendAsync(1, new byte[] { 7 }, 7));
            Assert.That(append!.InnerException, Is.SameAs(first));
            Assert.That(append.Path, Is.EqualTo(WalTestKit.Directory));
            var unsynced = Assert.ThrowsAsync<StorageFaultedException>(async () => await log.AppendAsync(1, new byte[] { 7 }, 7, sync: false));
            Assert.That(unsynced!.InnerException, Is.SameAs(first));
            var sync = Assert.ThrowsAsync<StorageFaultedException>(async () => await log.SyncAsync());
            Assert.That(sync!.InnerException, Is.SameAs(first));
        }
        finally
        {
            await log.DisposeAsync();
        }

        // Reopened, the log holds every acknowledged record (and perhaps the failed one) and takes appends again.
        await using var reopened = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments(segmentSizeBytes: 64 * 1024));
        var indexes = WalTestKit.ReadAll(reopened).Select(r => r.Index).ToList();
        Assert.That(indexes.Take(5), Is.EqualTo(new ulong[] { 1, 2, 3, 4, 5 }));
        Assert.That(indexes.Count, Is.InRange(5, 6));
        await reopened.AppendAsync(1, new byte[] { 8 }, (ulong)indexes.Count + 1);
        Assert.That(WalTestKit.ReadAll(reopened), Has.Count.EqualTo(indexes.Count + 1));
    }
}
