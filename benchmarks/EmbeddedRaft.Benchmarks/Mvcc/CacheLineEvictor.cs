namespace EmbeddedRaft.Benchmarks.Mvcc;

/// <summary>
/// Pushes a probe's data out of the CPU caches between operations (the probes' <c>--evict-lines N</c>):
/// reads pseudo-random cache lines of a large buffer, so an operation meets the cold memory a busy
/// writer or reader meets instead of lines its previous iteration left warm.
/// </summary>
internal static class CacheLineEvictor
{
    /// <summary>Reads <paramref name="lines"/> pseudo-random cache lines of <paramref name="buffer"/> (the same ones for the same <paramref name="i"/>); the sum keeps the reads from being elided.</summary>
    public static long Evict(byte[] buffer, int i, int lines)
    {
        long sum = 0;
        ulong state = ((ulong)i + 1) * 0x9E3779B97F4A7C15UL;
        for (int line = 0; line < lines; line++)
        {
            state = (state ^ (state >> 31)) * 0xBF58476D1CE4E5B9UL;
            sum += buffer[(int)((state >> 20) % (ulong)(buffer.Length / 64)) * 64];
        }

        return sum;
    }
}
