using EmbeddedRaft.Storage.Snapshots;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Storage.Tests.Snapshots;

/// <summary>
/// Crash after every mutating file-system call of a series of saves: the newest loadable snapshot
/// is whole, and it is the last one whose save returned or a later one.
/// </summary>
public sealed class SnapshotCrashTests
{
    private static IEnumerable<int> Seeds() => SnapshotTestKit.Seeds(200, 12);

    [TestCaseSource(nameof(Seeds))]
    public async Task ACrashDuringASaveLeavesThePreviousSnapshotLoadable(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} ({SnapshotTestKit.Reproduce(seed)})");
        var random = new Random(seed);
        var datas = Enumerable.Range(0, 5).Select(_ => SnapshotTestKit.Data(random, random.Next(0, 12_000))).ToList();
        var clean = new FaultInjectingFileSystem(seed);
        Assert.That(await RunAsync(clean, datas), Is.EqualTo(datas.Count));
        long operations = clean.OperationCount;

        for (long crashAt = 1; crashAt <= operations; crashAt++)
        {
            var fs = new FaultInjectingFileSystem(seed * 31 + (int)crashAt) { CrashAfterOperation = crashAt };
            int saved = await RunAsync(fs, datas);
            string where = $"seed {seed}, crash after operation {crashAt} of {operations}; {SnapshotTestKit.Reproduce(seed)}";
            Assert.That(fs.IsCrashed, Is.True, where);
            fs.Restart();

            using var snapshotter = new Snapshotter(fs, SnapshotTestKit.Directory, SnapshotTestKit.SmallChunks(retainCount: 2));
            using var loaded = (await snapshotter.LoadNewestAsync()).Snapshot;
            Assert.That(fs.AllFiles().Any(f => f.EndsWith(".tmp", StringComparison.Ordinal)), Is.False, $"loading clears what a crashed save left; {where}");
            if (saved == 0 && loaded is null)
            {
                continue;
            }

            Assert.That(loaded, Is.Not.Null, $"no snapshot after {saved} saves returned; {where}");
            int number = (int)(loaded!.Metadata.Index / 10);
            Assert.That(number, Is.InRange(saved, Math.Min(saved + 1, datas.Count)), $"loaded snapshot {number}; {where}");
            Assert.That(await SnapshotTestKit.ReadAllAsync(loaded), Is.EqualTo(datas[number - 1]), where);
            Assert.That(fs.AllFiles().Any(f => f.EndsWith(".broken", StringComparison.Ordinal)), Is.False, $"a crash never leaves a broken snapshot; {where}");
        }
    }

    /// <summary>Saves snapshots 1..n (index 10n); returns how many saves returned before a crash.</summary>
    private static async Task<int> RunAsync(FaultInjectingFileSystem fs, List<byte[]> datas)
    {
        int saved = 0;
        try
        {
            using var snapshotter = new Snapshotter(fs, SnapshotTestKit.Directory, SnapshotTestKit.SmallChunks(retainCount: 2));
            for (int i = 0; i < datas.Count; i++)
            {
                await snapshotter.SaveAsync(SnapshotTestKit.Metadata((ulong)(i + 1) * 10, 1), new MemoryStream(datas[i]));
                saved = i + 1;
            }
        }
        catch (SimulatedCrashException)
        {
        }

        return saved;
    }
}
