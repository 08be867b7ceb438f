using EmbeddedRaft.Storage.Snapshots;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Storage.Tests.Snapshots;

internal static class SnapshotTestKit
{
    public const string Directory = "/data/snap";

    public static SnapshotOptions SmallChunks(int retainCount = 3) => new() { RetainCount = retainCount, ChunkSizeBytes = 4096 };

    /// <summary>SNAPSHOT_SEED=N runs just N; otherwise <paramref name="count"/> seeds from <paramref name="first"/> (more with STORAGE_SOAK_SEEDS=N).</summary>
    public static IEnumerable<int> Seeds(int first, int count) => TestSeeds.Choose("SNAPSHOT_SEED", "STORAGE_SOAK_SEEDS", first, count);

    public static string Reproduce(int seed) => $"reproduce with SNAPSHOT_SEED={seed}";

    public static byte[] Data(Random random, int length)
    {
        var data = new byte[length];
        random.NextBytes(data);
        return data;
    }

    public static SnapshotFileMetadata Metadata(ulong index, ulong term, int membershipLength = 16) =>
        new(index, term, Enumerable.Range(0, membershipLength).Select(i => (byte)(i * 7 + (int)index)).ToArray());

    public static async Task<byte[]> ReadAllAsync(LoadedSnapshot snapshot)
    {
        using var copy = new MemoryStream();
        await snapshot.Data.CopyToAsync(copy);
        return copy.ToArray();
    }
}
