using System.Diagnostics;
using EmbeddedRaft.Benchmarks.Wal;

namespace EmbeddedRaft.Benchmarks.Consensus;

/// <summary>The disk's own floor: sequential 4 KiB writes each followed by fdatasync, in a preallocated file.</summary>
internal static class DiskSyncProbe
{
    /// <summary>Median microseconds of one 4 KiB write + fdatasync over <paramref name="iterations"/> tries.</summary>
    public static double MeasureP50Microseconds(string directory, int iterations)
    {
        const long FileBytes = 64L * 1024 * 1024;
        using var file = BenchmarkDirectory.CreateRawFile(directory, FileBytes);
        var block = new byte[4096];
        Random.Shared.NextBytes(block);
        var samples = new double[iterations];
        long offset = 0;
        for (int i = 0; i < iterations; i++)
        {
            long start = Stopwatch.GetTimestamp();
            file.Write(offset, block);
            file.Flush();
            samples[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
            offset = (offset + block.Length) % FileBytes;
        }

        Array.Sort(samples);
        return samples[samples.Length / 2];
    }
}
