namespace EmbeddedRaft.Consensus.Core;

/// <summary>
/// SplitMix64: a tiny, fast, well-distributed generator. The core's only source of randomness
/// (election jitter), seeded from the options so every run is reproducible.
/// </summary>
internal sealed class Prng(ulong seed)
{
    private ulong _state = seed;

    public ulong NextUInt64()
    {
        var z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in <c>[0, bound)</c> (negligible modulo bias for the small bounds used here).</summary>
    public int Next(int bound) => (int)(NextUInt64() % (ulong)bound);
}
