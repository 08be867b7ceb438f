using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Images.ImageTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Images;

/// <summary>
/// A store's image, captured as of its consistent index and restored in place into another store
/// (as a lagging Raft member installs the leader's snapshot): the target then holds exactly the
/// source's state at the capture — keys, history, leases and their keys, compaction, consistent
/// index — whatever it held before, keeps it across a restart, and goes on writing after it.
/// </summary>
public sealed class ImageRestoreTests
{
    [TestCaseSource(typeof(ImageTestSupport), nameof(Seeds))]
    public async Task RestoredStoreEqualsTheSourceAtTheCaptureNotAfterIt(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with IMAGE_SEED={seed}");
        var random = new Random(seed);
        var clock = Leases.LeaseTestSupport.Clock();
        var fs = new FaultInjectingFileSystem(seed);
        await using var source = MvccStore.Open(fs, SourceDirectory, Options(clock));
        await using var target = MvccStore.Open(fs, TargetDirectory, Options(clock));
        ulong next = await WriteAsync(source, random, 120, 1, "s");
        await WriteAsync(target, random, 40, 1, "t");

        var image = source.CaptureImage();
        string atCapture = Describe(source);
        ulong capturedIndex = source.ConsistentIndex;
        Assert.That(image.Index, Is.EqualTo(capturedIndex), "the image is as of the consistent index");

        // The source goes on; the image does not move.
        next = await WriteAsync(source, random, 30, next, "later");
        using var bytes = new MemoryStream();
        await image.WriteToAsync(bytes, CancellationToken.None);
        await image.DisposeAsync();
        bytes.Position = 0;

        await target.RestoreImageAsync(bytes);
        Assert.That(Describe(target), Is.EqualTo(atCapture), "the target holds the source's state at the capture");
        Assert.That(target.ConsistentIndex, Is.EqualTo(capturedIndex));

        // Writes go on from the image's revision and index.
        long revision = target.Revision;
        var put = await target.PutAsync(new PutRequest { Key = B("after"), Value = B("restore") }, capturedIndex + 1);
        Assert.That(put.Header.Revision, Is.EqualTo(revision + 1), "the next write takes the revision after the image's");
        Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await target.PutAsync(new PutRequest { Key = B("x"), Value = B("y") }, capturedIndex), "an index at or below the image's is refused");
        string afterWrite = Describe(target);

        // The swap is durable: the reopened store is the restored one plus the write.
        await target.SyncAsync();
        await target.DisposeAsync();
        await using var reopened = MvccStore.Open(fs, TargetDirectory, Options(clock));
        Assert.That(Describe(reopened), Is.EqualTo(afterWrite), "the restored store survives a restart");
        Assert.That(fs.AllFiles().Where(f => f.Contains(MvccStore.IncomingSuffix, StringComparison.Ordinal)), Is.Empty, "no restore file is left behind");
    }

    [TestCaseSource(typeof(ImageTestSupport), nameof(Seeds))]
    public async Task RestoredLeasesKeepTheirKeysAndRevokeThemWhole(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with IMAGE_SEED={seed}");
        var random = new Random(seed);
        var clock = Leases.LeaseTestSupport.Clock();
        var fs = new FaultInjectingFileSystem(seed);
        await using var source = MvccStore.Open(fs, SourceDirectory, Options(clock));
        await using var target = MvccStore.Open(fs, TargetDirectory, Options(clock));
        ulong next = await WriteAsync(source, random, 150, 1, "s");
        var (bytes, index) = await ImageBytesAsync(source);
        await target.RestoreImageAsync(new MemoryStream(bytes));

        // Revoke every lease on both: each deletes the same keys at the same revision.
        foreach (long lease in source.LeaseLeases().Leases.Order())
        {
            var fromSource = await source.LeaseRevokeAsync(lease, next);
            var fromTarget = await target.LeaseRevokeAsync(lease, next);
            Assert.That(fromTarget.Header.Revision, Is.EqualTo(fromSource.Header.Revision), $"seed {seed}: lease {lease} revoked at the same revision");
            next++;
        }

        Assert.That(Describe(target), Is.EqualTo(Describe(source)), $"seed {seed}: after revoking every lease (image at {index})");
    }

    [Test]
    public async Task ABrokenImageChangesNothing()
    {
        var random = new Random(7);
        var clock = Leases.LeaseTestSupport.Clock();
        var fs = new FaultInjectingFileSystem(7);
        await using var source = MvccStore.Open(fs, SourceDirectory, Options(clock));
        await using var target = MvccStore.Open(fs, TargetDirectory, Options(clock));
        await WriteAsync(source, random, 50, 1, "s");
        ulong next = await WriteAsync(target, random, 20, 1, "t");
        string before = Describe(target);
        var (bytes, _) = await ImageBytesAsync(source);

        Assert.ThrowsAsync<InvalidDataException>(async () => await target.RestoreImageAsync(new MemoryStream(bytes[..^10])), "a truncated image");
        var flipped = bytes.ToArray();
        flipped[bytes.Length / 2] ^= 0x10;
        Assert.ThrowsAsync<InvalidDataException>(async () => await target.RestoreImageAsync(new MemoryStream(flipped)), "an image with a flipped bit");

        Assert.That(Describe(target), Is.EqualTo(before), "the target is unchanged");
        await target.PutAsync(new PutRequest { Key = B("still"), Value = B("writable") }, next);
        Assert.That(target.Range(new RangeRequest { Key = B("still") }).Kvs, Has.Count.EqualTo(1), "and still takes writes");
        Assert.That(fs.AllFiles().Where(f => f.Contains(MvccStore.IncomingSuffix, StringComparison.Ordinal)), Is.Empty, "no restore file is left behind");
    }

    [Test]
    public async Task ARestoreRightAfterReadsOfTheOldFileDoesNotWaitForThemAndLaterReadsSeeTheNewOne()
    {
        // Reads since the last commit share one snapshot of the old file (SharedReadView); with no
        // reader left, the restore must not wait for that shared snapshot, and no read may use it after.
        var random = new Random(12);
        var clock = Leases.LeaseTestSupport.Clock();
        var fs = new FaultInjectingFileSystem(12);
        await using var source = MvccStore.Open(fs, SourceDirectory, Options(clock));
        await using var target = MvccStore.Open(fs, TargetDirectory, Options(clock));
        await WriteAsync(source, random, 40, 1, "s");
        await WriteAsync(target, random, 40, 1, "t");
        await target.PutAsync(new PutRequest { Key = B("only-in-target"), Value = B("old") }, target.ConsistentIndex + 1);

        // Committed and synced: the restore commits nothing first, so the read's shared snapshot is the one it must retire.
        await target.SyncAsync();
        string sourceState = Describe(source);
        var (bytes, _) = await ImageBytesAsync(source);

        Assert.That(S(target.Range(new RangeRequest { Key = B("only-in-target") }).Kvs.Single().Value), Is.EqualTo("old"));
        var restore = target.RestoreImageAsync(new MemoryStream(bytes)).AsTask();
        restore.WaitOrFail("the restore, with no read in progress");

        Assert.That(target.Range(new RangeRequest { Key = B("only-in-target") }).Kvs, Is.Empty, "a read after the restore reads the restored file");
        Assert.That(Describe(target), Is.EqualTo(sourceState));
    }

    [Test]
    public async Task ARestoreWaitsForReadersOfTheOldFile()
    {
        var random = new Random(11);
        var clock = Leases.LeaseTestSupport.Clock();
        var fs = new FaultInjectingFileSystem(11);
        await using var source = MvccStore.Open(fs, SourceDirectory, Options(clock));
        await using var target = MvccStore.Open(fs, TargetDirectory, Options(clock));
        await WriteAsync(source, random, 40, 1, "s");
        await WriteAsync(target, random, 40, 1, "t");
        string sourceState = Describe(source);
        var (bytes, _) = await ImageBytesAsync(source);

        // An image of the target being written out holds a reader on the old file.
        var reader = target.CaptureImage();
        var restore = target.RestoreImageAsync(new MemoryStream(bytes)).AsTask();
        using (var sink = new MemoryStream())
        {
            await reader.WriteToAsync(sink, CancellationToken.None);
            Assert.That(sink.Length, Is.GreaterThan(0), "the old image was written out whole while the restore waited");
        }

        Assert.That(restore.IsCompleted, Is.False, "the swap waits while a reader of the old file is open");
        await reader.DisposeAsync();
        restore.WaitOrFail("the restore, once the reader is gone");
        Assert.That(Describe(target), Is.EqualTo(sourceState));
    }
}
