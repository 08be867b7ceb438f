using EmbeddedRaft.Storage.IO;
using EmbeddedRaft.Storage.Snapshots;

namespace EmbeddedRaft.Storage.Tests.Snapshots;

/// <summary>A snapshot much larger than the memory a save or load uses, on the real disk.</summary>
public sealed class SnapshotStreamingTests
{
    [Test]
    public async Task A256MiBSnapshotStreamsBothWaysThroughBoundedMemory()
    {
        const long Size = 256L * 1024 * 1024;
        string directory = Path.Combine(Path.GetTempPath(), "embeddedraft-snap-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var snapshotter = new Snapshotter(PhysicalFileSystem.Instance, directory);
            var block = new byte[64 * 1024];
            new Random(9).NextBytes(block);
            uint expectedCrc = 0;

            long before = GC.GetTotalAllocatedBytes(precise: true);
            await snapshotter.SaveAsync(new SnapshotFileMetadata(1000, 7, [1]), async (stream, token) =>
            {
                for (long written = 0; written < Size; written += block.Length)
                {
                    block[0] = (byte)(written >> 16); // vary the data
                    expectedCrc = Storage.Crc32C.Append(expectedCrc, block);
                    await stream.WriteAsync(block, token);
                }
            }, CancellationToken.None);
            long saveAllocated = GC.GetTotalAllocatedBytes(precise: true) - before;

            before = GC.GetTotalAllocatedBytes(precise: true);
            uint actualCrc = 0;
            long read = 0;
            using (var loaded = (await snapshotter.LoadNewestAsync()).Snapshot)
            {
                var buffer = new byte[100_000];
                int n;
                while ((n = await loaded!.Data.ReadAsync(buffer)) > 0)
                {
                    actualCrc = Storage.Crc32C.Append(actualCrc, buffer.AsSpan(0, n));
                    read += n;
                }
            }

            long loadAllocated = GC.GetTotalAllocatedBytes(precise: true) - before;
            Assert.That(read, Is.EqualTo(Size));
            Assert.That(actualCrc, Is.EqualTo(expectedCrc));
            Assert.That(saveAllocated, Is.LessThan(8L * 1024 * 1024), "save allocations");
            Assert.That(loadAllocated, Is.LessThan(8L * 1024 * 1024), "load allocations");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
