using EmbeddedRaft.Storage.Snapshots;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Storage.Tests.Snapshots;

public sealed class SnapshotRoundTripTests
{
    [TestCase(0)]
    [TestCase(1)]
    [TestCase(4096)]
    [TestCase(4097)]
    [TestCase(100_000)]
    public async Task DataAndMetadataRoundTrip(int length)
    {
        var fs = new FaultInjectingFileSystem(length);
        using var snapshotter = new Snapshotter(fs, SnapshotTestKit.Directory, SnapshotTestKit.SmallChunks());
        var data = SnapshotTestKit.Data(new Random(length), length);
        var metadata = SnapshotTestKit.Metadata(42, 5, membershipLength: 100);
        await snapshotter.SaveAsync(metadata, async (stream, token) =>
        {
            // Odd-sized writes, so chunk boundaries fall inside them.
            for (int offset = 0; offset < data.Length; offset += 333)
            {
                await stream.WriteAsync(data.AsMemory(offset, Math.Min(333, data.Length - offset)), token);
            }
        }, CancellationToken.None);

        using var loaded = (await snapshotter.LoadNewestAsync()).Snapshot;
        Assert.That(loaded, Is.Not.Null);
        Assert.That(loaded!.Metadata.Index, Is.EqualTo(42UL));
        Assert.That(loaded.Metadata.Term, Is.EqualTo(5UL));
        Assert.That(loaded.Metadata.Membership.ToArray(), Is.EqualTo(metadata.Membership.ToArray()));
        Assert.That(loaded.DataLengthBytes, Is.EqualTo(length));
        Assert.That(await SnapshotTestKit.ReadAllAsync(loaded), Is.EqualTo(data));
    }

    [Test]
    public async Task AnEmptyDirectoryHasNoSnapshot()
    {
        using var snapshotter = new Snapshotter(new FaultInjectingFileSystem(1), SnapshotTestKit.Directory);
        Assert.That((await snapshotter.LoadNewestAsync()).Snapshot, Is.Null);
    }

    [Test]
    public async Task TheSnapshotWithTheHighestIndexIsLoaded()
    {
        var fs = new FaultInjectingFileSystem(2);
        using var snapshotter = new Snapshotter(fs, SnapshotTestKit.Directory, SnapshotTestKit.SmallChunks(retainCount: 5));
        await snapshotter.SaveAsync(SnapshotTestKit.Metadata(30, 2), new MemoryStream([3]));
        await snapshotter.SaveAsync(SnapshotTestKit.Metadata(50, 2), new MemoryStream([5]));
        await snapshotter.SaveAsync(SnapshotTestKit.Metadata(40, 3), new MemoryStream([4]));

        using var loaded = (await snapshotter.LoadNewestAsync()).Snapshot;
        Assert.That(loaded!.Metadata.Index, Is.EqualTo(50UL));
        Assert.That(await SnapshotTestKit.ReadAllAsync(loaded), Is.EqualTo(new byte[] { 5 }));
    }

    [Test]
    public async Task OnlyTheNewestRetainCountSnapshotsAreKept()
    {
        var fs = new FaultInjectingFileSystem(3);
        using var snapshotter = new Snapshotter(fs, SnapshotTestKit.Directory, SnapshotTestKit.SmallChunks(retainCount: 2));
        for (ulong i = 1; i <= 5; i++)
        {
            await snapshotter.SaveAsync(SnapshotTestKit.Metadata(i * 10, 1), new MemoryStream([(byte)i]));
        }

        Assert.That((await snapshotter.ListSnapshotsAsync()).Select(Path.GetFileName), Is.EqualTo(new[] { SnapshotFormat.FileName(1, 50), SnapshotFormat.FileName(1, 40) }));
    }

    [Test]
    public async Task AWriterThatThrowsLeavesNoSnapshotAndThePreviousOneLoadable()
    {
        var fs = new FaultInjectingFileSystem(4);
        using var snapshotter = new Snapshotter(fs, SnapshotTestKit.Directory, SnapshotTestKit.SmallChunks());
        await snapshotter.SaveAsync(SnapshotTestKit.Metadata(10, 1), new MemoryStream([1, 2, 3]));

        Assert.ThrowsAsync<InvalidOperationException>(async () => await snapshotter.SaveAsync(SnapshotTestKit.Metadata(20, 1), async (stream, token) =>
        {
            await stream.WriteAsync(new byte[10_000], token);
            throw new InvalidOperationException("the state machine failed");
        }, CancellationToken.None));

        Assert.That(fs.AllFiles().Where(f => f.StartsWith(SnapshotTestKit.Directory, StringComparison.Ordinal)).Select(Path.GetFileName), Is.EqualTo(new[] { SnapshotFormat.FileName(1, 10) }));
        using var loaded = (await snapshotter.LoadNewestAsync()).Snapshot;
        Assert.That(loaded!.Metadata.Index, Is.EqualTo(10UL));
    }

    [Test]
    public void AMembershipLargerThanTheLimitIsRefused()
    {
        using var snapshotter = new Snapshotter(new FaultInjectingFileSystem(5), SnapshotTestKit.Directory, new SnapshotOptions { MaxMembershipSizeBytes = 8 });
        Assert.ThrowsAsync<ArgumentException>(async () => await snapshotter.SaveAsync(new SnapshotFileMetadata(1, 1, new byte[9]), new MemoryStream()));
    }
}
