using EmbeddedRaft.Storage.IO;
using EmbeddedRaft.Storage.Snapshots;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Storage.Tests.Snapshots;

/// <summary>
/// Issue 11: a load that falls back to an older snapshot tells the caller (the result lists what
/// was set aside and why) and the log (a warning each). Misuse gets errors that name the type and path.
/// </summary>
public sealed class SnapshotFallbackTests
{
    [Test]
    public async Task FallingBackToAnOlderSnapshotListsTheQuarantinedOneWithItsReasonAndLogsIt()
    {
        var fs = new FaultInjectingFileSystem(200);
        var logger = new RecordingLogger();
        using var snapshotter = new Snapshotter(fs, SnapshotTestKit.Directory, new SnapshotOptions { ChunkSizeBytes = 4096, Logger = logger });
        await snapshotter.SaveAsync(SnapshotTestKit.Metadata(10, 1), new MemoryStream(SnapshotTestKit.Data(new Random(1), 9000)));
        string newest = await snapshotter.SaveAsync(SnapshotTestKit.Metadata(20, 1), new MemoryStream(SnapshotTestKit.Data(new Random(2), 9000)));
        fs.FlipBit(newest, 5000, 2);

        var result = (await snapshotter.LoadNewestAsync());
        using var loaded = result.Snapshot;
        Assert.That(loaded!.Metadata.Index, Is.EqualTo(10UL));
        var quarantined = result.Quarantined.Single();
        Assert.That(quarantined.Path, Is.EqualTo(newest));
        Assert.That(quarantined.BrokenPath, Is.EqualTo(newest + ".broken"));
        Assert.That(fs.FileExists(quarantined.BrokenPath), Is.True);
        Assert.That(quarantined.Offset, Is.LessThanOrEqualTo(5000).And.GreaterThan(0), "where the damage was found: the chunk that holds the flipped byte");
        Assert.That(quarantined.Reason, Is.Not.Empty);

        var warning = logger.Entries.Single();
        Assert.That(warning.Level, Is.EqualTo(LogLevel.Warning));
        Assert.That(warning.Message, Does.Contain(newest).And.Contain(newest + ".broken"));
    }

    [Test]
    public async Task WhenEverySnapshotIsDamagedTheResultHasNoneButListsThemAll()
    {
        var fs = new FaultInjectingFileSystem(201);
        using var snapshotter = new Snapshotter(fs, SnapshotTestKit.Directory, SnapshotTestKit.SmallChunks());
        string older = await snapshotter.SaveAsync(SnapshotTestKit.Metadata(10, 1), new MemoryStream(new byte[100]));
        string newer = await snapshotter.SaveAsync(SnapshotTestKit.Metadata(20, 1), new MemoryStream(new byte[100]));
        fs.FlipBit(older, 3, 0);
        fs.FlipBit(newer, 3, 0);

        var result = (await snapshotter.LoadNewestAsync());
        Assert.That(result.Snapshot, Is.Null);
        Assert.That(result.Quarantined.Select(q => q.Path), Is.EqualTo(new[] { newer, older }), "newest first");
    }

    [Test]
    public async Task ALoadWithNothingDamagedReportsNothing()
    {
        var fs = new FaultInjectingFileSystem(202);
        var logger = new RecordingLogger();
        using var snapshotter = new Snapshotter(fs, SnapshotTestKit.Directory, new SnapshotOptions { Logger = logger });
        await snapshotter.SaveAsync(SnapshotTestKit.Metadata(10, 1), new MemoryStream(new byte[100]));

        var result = (await snapshotter.LoadNewestAsync());
        using var loaded = result.Snapshot;
        Assert.That(loaded, Is.Not.Null);
        Assert.That(result.Quarantined, Is.Empty);
        Assert.That(logger.Entries, Is.Empty);
    }

    [Test]
    public async Task EveryCallAfterDisposeThrowsObjectDisposedExceptionNamingTheSnapshotter()
    {
        var fs = new FaultInjectingFileSystem(203);
        var snapshotter = new Snapshotter(fs, SnapshotTestKit.Directory);
        snapshotter.Dispose();
        snapshotter.Dispose(); // idempotent
        await snapshotter.DisposeAsync(); // idempotent, whichever way

        string name = typeof(Snapshotter).FullName!;
        var refusals = new[]
        {
            Assert.ThrowsAsync<ObjectDisposedException>(async () => await snapshotter.LoadNewestAsync()),
            Assert.ThrowsAsync<ObjectDisposedException>(async () => await snapshotter.ListSnapshotsAsync()),
            Assert.ThrowsAsync<ObjectDisposedException>(async () => await snapshotter.SaveAsync(SnapshotTestKit.Metadata(1, 1), new MemoryStream(new byte[1]))),
            Assert.ThrowsAsync<ObjectDisposedException>(async () => await snapshotter.SaveAsync(SnapshotTestKit.Metadata(1, 1), (_, _) => ValueTask.CompletedTask, CancellationToken.None)),

            // Disposal is reported before the arguments are looked at.
            Assert.ThrowsAsync<ObjectDisposedException>(async () => await snapshotter.SaveAsync(null!, new MemoryStream())),
            Assert.ThrowsAsync<ObjectDisposedException>(async () => await snapshotter.SaveAsync(new SnapshotFileMetadata(1, 1, new byte[SnapshotOptions.DefaultMaxMembershipSizeBytes + 1]), (Stream)null!, CancellationToken.None)),
        };
        foreach (var refusal in refusals)
        {
            Assert.That(refusal!.ObjectName, Is.EqualTo(name));
            Assert.That(refusal.Message, Does.Not.Contain("Semaphore").And.Contain(SnapshotTestKit.Directory));
        }
    }

    [Test]
    public void APlainFileWhereTheDirectoryShouldBeIsNamedAsNotADirectory()
    {
        var fs = new FaultInjectingFileSystem(204);
        fs.CreateDirectory("/data");
        fs.Open(SnapshotTestKit.Directory, FileOpenMode.CreateNew).Dispose();

        var error = Assert.Throws<IOException>(() => new Snapshotter(fs, SnapshotTestKit.Directory).Dispose());
        Assert.That(error!.Message, Does.Contain(SnapshotTestKit.Directory).And.Contain("not a directory"));
    }

    [Test]
    public async Task ASecondSnapshotterOfTheSameDirectoryIsRefusedUntilTheFirstIsDisposed()
    {
        var fs = new FaultInjectingFileSystem(205);
        var first = new Snapshotter(fs, SnapshotTestKit.Directory);
        var error = Assert.Throws<StorageLockedException>(() => new Snapshotter(fs, SnapshotTestKit.Directory).Dispose());
        Assert.That(error!.LockPath, Is.EqualTo(Path.Combine(SnapshotTestKit.Directory, "snap.lock")));

        first.Dispose();
        using var second = new Snapshotter(fs, SnapshotTestKit.Directory);
        Assert.That((await second.ListSnapshotsAsync()), Is.Empty, "the lock file is not a snapshot");
    }

    [Test]
    public async Task ASecondSnapshotterIsRefusedOnTheRealDiskToo()
    {
        string directory = Path.Combine(Path.GetTempPath(), "embeddedraft-snap-lock-" + Guid.NewGuid().ToString("N"));
        try
        {
            using (var first = new Snapshotter(PhysicalFileSystem.Instance, directory))
            {
                Assert.Throws<StorageLockedException>(() => new Snapshotter(PhysicalFileSystem.Instance, directory).Dispose());
            }

            using var second = new Snapshotter(PhysicalFileSystem.Instance, directory);
            Assert.That((await second.ListSnapshotsAsync()), Is.Empty);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
