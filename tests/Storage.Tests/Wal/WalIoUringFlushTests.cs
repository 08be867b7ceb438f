using EmbeddedRaft.Storage.IO;
using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Storage.Tests.Wal;

/// <summary>
/// The WAL's io_uring flush (Linux, <see cref="WalOptions.IoUringFlush"/>): a caller's sync is made
/// durable through the ring, a failed ring fsync stops the log for good (never retried), disposal
/// closes the ring, and wherever there is no ring to use, flushes stay synchronous.
/// </summary>
[NonParallelizable] // counts the process's open rings
public sealed class WalIoUringFlushTests
{
    private string _directory = null!;

    [SetUp]
    public void CreateDirectory()
    {
        _directory = Path.Combine(Path.GetTempPath(), "embeddedraft-uring-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_directory);
    }

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_directory, recursive: true);

    [Test]
    public async Task SyncsGoThroughTheRingAndWhatTheyCoveredIsThereAfterReopen()
    {
        RequireRing();
        var fs = new RingCountingFileSystem();
        await using (var log = WriteAheadLog.Open(fs, _directory, Options()))
        {
            for (ulong i = 1; i <= 20; i++)
            {
                await log.AppendAsync(1, new byte[] { (byte)i }, i, sync: false);
                await log.SyncAsync();
                Assert.That(log.DurablePosition, Is.EqualTo(log.EndPosition), $"sync {i} returned before its records were durable");
            }
        }

        Assert.That(fs.RingFlushes, Is.EqualTo(20), "each lone sync's flush was submitted to the ring");
        await using var reopened = WriteAheadLog.Open(PhysicalFileSystem.Instance, _directory, Options());
        Assert.That(WalTestKit.ReadAll(reopened).Select(r => r.Index), Is.EqualTo(Enumerable.Range(1, 20).Select(i => (ulong)i)));
    }

    [Test]
    public async Task AFailedRingFlushStopsTheLogForGoodAndIsNeverRetried()
    {
        RequireRing();
        var fs = new RingCountingFileSystem();
        var log = WriteAheadLog.Open(fs, _directory, Options());
        try
        {
            await log.AppendAsync(1, new byte[] { 1 }, 1, sync: false);
            await log.SyncAsync();
            fs.FailRingFlushes = true;
            await log.AppendAsync(1, new byte[] { 2 }, 2, sync: false);

            // The sync whose ring fsync failed sees the kernel's error itself.
            var first = Assert.ThrowsAsync<IOException>(async () => await log.SyncAsync());
            Assert.That(first, Is.Not.TypeOf<StorageFaultedException>());
            fs.FailRingFlushes = false;
            long flushesAtFailure = fs.RingFlushes + fs.SynchronousFlushes;

            // Everything later refuses with the first failure, though the disk works again: the
            // failed fsync is not retried (the kernel may have dropped the dirty pages).
            var sync = Assert.ThrowsAsync<StorageFaultedException>(async () => await log.SyncAsync());
            Assert.That(sync!.InnerException, Is.SameAs(first));
            var append = Assert.ThrowsAsync<StorageFaultedException>(async () => await log.AppendAsync(1, new byte[] { 3 }, 3));
            Assert.That(append!.InnerException, Is.SameAs(first));
            Assert.That(fs.RingFlushes + fs.SynchronousFlushes, Is.EqualTo(flushesAtFailure), "no flush after the failed one");
        }
        finally
        {
            await log.DisposeAsync();
        }
    }

    [Test]
    public async Task DisposeClosesTheRingAndUnmapsIt()
    {
        RequireRing();
        int ringsBefore = Volatile.Read(ref UringFlusher.OpenRings);
        int descriptorsBefore = OpenRingDescriptors();
        var log = WriteAheadLog.Open(PhysicalFileSystem.Instance, _directory, Options());
        await log.AppendAsync(1, new byte[] { 1 }, 1, sync: false);
        await log.SyncAsync();
        Assert.That(Volatile.Read(ref UringFlusher.OpenRings), Is.EqualTo(ringsBefore + 1), "the log opened one ring");
        Assert.That(OpenRingDescriptors(), Is.EqualTo(descriptorsBefore + 1), "and holds its descriptor");

        await log.DisposeAsync();

        Assert.That(Volatile.Read(ref UringFlusher.OpenRings), Is.EqualTo(ringsBefore), "disposal unmapped and closed the ring");
        Assert.That(OpenRingDescriptors(), Is.EqualTo(descriptorsBefore), "its descriptor is closed");
    }

    [TestCase(false, WalThreading.BackgroundThreads)]
    [TestCase(true, WalThreading.CallerThread)]
    public async Task WithTheSwitchOffOrNoBackgroundThreadsNoRingIsOpenedAndFlushesStaySynchronous(bool ioUringFlush, WalThreading threading)
    {
        int ringsBefore = Volatile.Read(ref UringFlusher.OpenRings);
        var fs = new RingCountingFileSystem();
        await using (var log = WriteAheadLog.Open(fs, _directory, Options() with { IoUringFlush = ioUringFlush, Threading = threading }))
        {
            Assert.That(Volatile.Read(ref UringFlusher.OpenRings), Is.EqualTo(ringsBefore));
            await log.AppendAsync(1, new byte[] { 1 }, 1, sync: false);
            await log.SyncAsync();
        }

        Assert.That(fs.RingFlushes, Is.Zero);
        Assert.That(fs.SynchronousFlushes, Is.GreaterThan(0));
    }

    [Test]
    public async Task AFileThatCannotTakeTheRingIsFlushedOnTheCallersThread()
    {
        // The simulator's file system: its files know nothing of the ring, so nothing changes for
        // it (still deterministic), whatever the switch says.
        var fs = new FaultInjectingFileSystem(7);
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments(segmentSizeBytes: 64 * 1024) with { IoUringFlush = true });
        long flushesBefore = fs.FlushCount;
        await log.AppendAsync(1, new byte[] { 1 }, 1, sync: false);
        await log.SyncAsync();
        Assert.That(fs.FlushCount, Is.EqualTo(flushesBefore + 1), "flushed synchronously, inside the sync");
        Assert.That(log.DurablePosition, Is.EqualTo(log.EndPosition));
    }

    private static WalOptions Options() => WalOptions.Default with { SegmentSizeBytes = 1024 * 1024, IoUringFlush = true };

    private static void RequireRing()
    {
        using var ring = UringFlusher.TryCreate();
        if (ring is null)
        {
            Assert.Ignore("No io_uring here (not Linux, or disabled): the ring path cannot run.");
        }
    }

    private static int OpenRingDescriptors() =>
        new DirectoryInfo("/proc/self/fd").GetFileSystemInfos().Count(f => f.LinkTarget?.Contains("io_uring", StringComparison.Ordinal) == true);

    /// <summary>The real disk, its files counting synchronous and ring flushes, and a switch that makes the ring's fsync fail (a bad descriptor: EBADF).</summary>
    private sealed class RingCountingFileSystem : IFileSystem
    {
        private readonly IFileSystem _inner = PhysicalFileSystem.Instance;
        private long _ringFlushes;
        private long _synchronousFlushes;

        public bool FailRingFlushes { get; set; }

        public long RingFlushes => Interlocked.Read(ref _ringFlushes);

        public long SynchronousFlushes => Interlocked.Read(ref _synchronousFlushes);

        public IStorageFile Open(string path, FileOpenMode mode) => new CountingFile(this, _inner.Open(path, mode));

        public bool FileExists(string path) => _inner.FileExists(path);

        public bool DirectoryExists(string path) => _inner.DirectoryExists(path);

        public void CreateDirectory(string path) => _inner.CreateDirectory(path);

        public void DeleteFile(string path) => _inner.DeleteFile(path);

        public void Rename(string sourcePath, string destinationPath) => _inner.Rename(sourcePath, destinationPath);

        public IReadOnlyList<string> ListFiles(string directory) => _inner.ListFiles(directory);

        public void SyncDirectory(string directory) => _inner.SyncDirectory(directory);

        public IDisposable AcquireExclusiveLock(string lockFilePath) => _inner.AcquireExclusiveLock(lockFilePath);

        private sealed class CountingFile(RingCountingFileSystem fs, IStorageFile inner) : IStorageFile, IRingFlushableFile
        {
            public string Path => inner.Path;

            public long Length => inner.Length;

            public int Read(long offset, Span<byte> buffer) => inner.Read(offset, buffer);

            public void Write(long offset, ReadOnlySpan<byte> data) => inner.Write(offset, data);

            public void Write(long offset, IReadOnlyList<ReadOnlyMemory<byte>> buffers) => inner.Write(offset, buffers);

            public void Flush()
            {
                Interlocked.Increment(ref fs._synchronousFlushes);
                inner.Flush();
            }

            public bool TrySubmitFlush(UringFlusher ring, Action<Exception?> done)
            {
                Interlocked.Increment(ref fs._ringFlushes);
                if (fs.FailRingFlushes)
                {
                    return ring.TrySubmitDataSync(-1, result => done(new IOException($"fdatasync (io_uring) failed: errno {-result}.", -result)));
                }

                return ((IRingFlushableFile)inner).TrySubmitFlush(ring, done);
            }

            public void SetLength(long length) => inner.SetLength(length);

            public void Preallocate(long length) => inner.Preallocate(length);

            public void Dispose() => inner.Dispose();
        }
    }
}
