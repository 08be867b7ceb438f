using EmbeddedRaft.Storage.IO;
using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Storage.Tests.Wal;

public sealed class WalLockTests
{
    [Test]
    public async Task ASecondWriterOfTheSameDirectoryIsRefusedUntilTheFirstCloses()
    {
        var fs = new FaultInjectingFileSystem(50);
        var first = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments());
        var error = Assert.Throws<StorageLockedException>(() => WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments()));
        Assert.That(error!.LockPath, Does.EndWith("wal.lock"));

        await first.DisposeAsync();
        await using var second = WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments());
        Assert.That(second.SegmentPaths, Has.Count.EqualTo(1));
    }

    [Test]
    public async Task ASecondWriterIsRefusedOnTheRealDiskToo()
    {
        string directory = Path.Combine(Path.GetTempPath(), "embeddedraft-wal-lock-" + Guid.NewGuid().ToString("N"));
        try
        {
            await using (var first = WriteAheadLog.Open(PhysicalFileSystem.Instance, directory, WalTestKit.SmallSegments()))
            {
                await first.AppendAsync(1, new byte[10], 1);
                Assert.Throws<StorageLockedException>(() => WriteAheadLog.Open(PhysicalFileSystem.Instance, directory, WalTestKit.SmallSegments()));
            }

            await using var second = WriteAheadLog.Open(PhysicalFileSystem.Instance, directory, WalTestKit.SmallSegments());
            Assert.That(WalTestKit.ReadAll(second).Single().Index, Is.EqualTo(1UL));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
