namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>
/// Chooses lease ids on the member that proposes a grant, before proposing (as etcd's server does
/// with its idutil generator), so every member grants the same id: the low 15 bits of the member
/// id in the top bits below the sign, then a counter that starts at the wall clock in milliseconds
/// shifted left 8 bits, so ids from different members never collide and a restarted member does
/// not reuse its earlier ids unless the clock went back. Always positive. Thread-safe.
/// </summary>
internal sealed class LeaseIdGenerator
{
    private const int SuffixBits = 48;
    private const long SuffixMask = (1L << SuffixBits) - 1;

    private readonly long _prefix;
    private long _suffix;

    public LeaseIdGenerator(ulong memberId, TimeProvider time)
    {
        _prefix = (long)(memberId & 0x7FFF) << SuffixBits;
        _suffix = (Math.Max(0, time.GetUtcNow().ToUnixTimeMilliseconds()) << 8) & SuffixMask;
    }

    /// <summary>The next id: positive, never 0.</summary>
    public long Next()
    {
        // Bounded: at most two steps (the suffix 0 is skipped when the prefix is 0).
        while (true)
        {
            long id = _prefix | (Interlocked.Increment(ref _suffix) & SuffixMask);
            if (id > 0)
            {
                return id;
            }
        }
    }
}
