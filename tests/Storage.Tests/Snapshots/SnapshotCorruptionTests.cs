using EmbeddedRaft.Storage.IO;
using EmbeddedRaft.Storage.Snapshots;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Storage.Tests.Snapshots;

/// <summary>A damaged newest snapshot is set aside (never deleted) and the one before it is loaded.</summary>
public sealed class SnapshotCorruptionTests
{
    private static IEnumerable<int> Seeds() => SnapshotTestKit.Seeds(100, 10);

    [Test]
    public async Task ACorruptedNewestSnapshotIsRenamedAsideAndThePreviousOneLoads()
    {
        var fs = new FaultInjectingFileSystem(1);
        using var snapshotter = new Snapshotter(fs, SnapshotTestKit.Directory, SnapshotTestKit.SmallChunks());
        var older = SnapshotTestKit.Data(new Random(1), 9000);
        await snapshotter.SaveAsync(SnapshotTestKit.Metadata(10, 1), new MemoryStream(older));
        string newest = await snapshotter.SaveAsync(SnapshotTestKit.Metadata(20, 1), new MemoryStream(SnapshotTestKit.Data(new Random(2), 9000)));
        fs.FlipBit(newest, 5000, 2);

        using var loaded = (await snapshotter.LoadNewestAsync()).Snapshot;
        Assert.That(loaded!.Metadata.Index, Is.EqualTo(10UL));
        Assert.That(await SnapshotTestKit.ReadAllAsync(loaded), Is.EqualTo(older));
        Assert.That(fs.FileExists(newest), Is.False);
        Assert.That(fs.FileExists(newest + ".broken"), Is.True, "kept for an operator, never deleted");
    }

    [TestCaseSource(nameof(Seeds))]
    public async Task AFlippedBitAnywhereInTheNewestSnapshotIsAlwaysDetected(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} ({SnapshotTestKit.Reproduce(seed)})");
        var random = new Random(seed);
        var older = SnapshotTestKit.Data(random, random.Next(0, 20_000));
        var newer = SnapshotTestKit.Data(random, random.Next(0, 20_000));
        for (int trial = 0; trial < 40; trial++)
        {
            var fs = new FaultInjectingFileSystem(seed);
            using var snapshotter = new Snapshotter(fs, SnapshotTestKit.Directory, SnapshotTestKit.SmallChunks());
            await snapshotter.SaveAsync(SnapshotTestKit.Metadata(10, 1), new MemoryStream(older));
            string newest = await snapshotter.SaveAsync(SnapshotTestKit.Metadata(20, 2, membershipLength: random.Next(0, 50)), new MemoryStream(newer));
            long offset = random.NextInt64(fs.GetLength(newest));
            int bit = random.Next(8);
            fs.FlipBit(newest, offset, bit);

            using var loaded = (await snapshotter.LoadNewestAsync()).Snapshot;
            string where = $"seed {seed}, trial {trial}, bit {bit} of byte {offset}; {SnapshotTestKit.Reproduce(seed)}";
            Assert.That(loaded!.Metadata.Index, Is.EqualTo(10UL), where);
            Assert.That(await SnapshotTestKit.ReadAllAsync(loaded), Is.EqualTo(older), where);
            Assert.That(fs.FileExists(newest + ".broken"), Is.True, where);
        }
    }

    [Test]
    public async Task DamageAfterLoadingIsCaughtWhileTheDataIsRead()
    {
        var fs = new FaultInjectingFileSystem(3);
        using var snapshotter = new Snapshotter(fs, SnapshotTestKit.Directory, SnapshotTestKit.SmallChunks());
        string path = await snapshotter.SaveAsync(SnapshotTestKit.Metadata(10, 1), new MemoryStream(new byte[50_000]));
        using var loaded = (await snapshotter.LoadNewestAsync()).Snapshot;
        fs.FlipBit(path, 30_000, 0);

        var error = Assert.ThrowsAsync<CorruptionException>(async () => await SnapshotTestKit.ReadAllAsync(loaded!));
        Assert.That(error!.Path, Is.EqualTo(path));
        Assert.That(error.Offset, Is.LessThanOrEqualTo(30_000));
    }

    [Test]
    public async Task ATruncatedSnapshotIsDetected()
    {
        var fs = new FaultInjectingFileSystem(4);
        using var snapshotter = new Snapshotter(fs, SnapshotTestKit.Directory, SnapshotTestKit.SmallChunks());
        await snapshotter.SaveAsync(SnapshotTestKit.Metadata(10, 1), new MemoryStream([1]));
        string newest = await snapshotter.SaveAsync(SnapshotTestKit.Metadata(20, 1), new MemoryStream(new byte[10_000]));
        using (var file = fs.Open(newest, FileOpenMode.OpenExisting))
        {
            file.SetLength(file.Length - 40);
            file.Flush();
        }

        using var loaded = (await snapshotter.LoadNewestAsync()).Snapshot;
        Assert.That(loaded!.Metadata.Index, Is.EqualTo(10UL));
    }

    [Test]
    public async Task WhenEverySnapshotIsBrokenNoneLoadsAndAllAreKept()
    {
        var fs = new FaultInjectingFileSystem(5);
        using var snapshotter = new Snapshotter(fs, SnapshotTestKit.Directory, SnapshotTestKit.SmallChunks());
        string a = await snapshotter.SaveAsync(SnapshotTestKit.Metadata(10, 1), new MemoryStream(new byte[100]));
        string b = await snapshotter.SaveAsync(SnapshotTestKit.Metadata(20, 1), new MemoryStream(new byte[100]));
        fs.FlipBit(a, 60, 0);
        fs.FlipBit(b, 60, 0);

        Assert.That((await snapshotter.LoadNewestAsync()).Snapshot, Is.Null);
        Assert.That(fs.FileExists(a + ".broken") && fs.FileExists(b + ".broken"), Is.True);
    }
}
