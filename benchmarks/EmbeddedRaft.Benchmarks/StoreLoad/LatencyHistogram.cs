using System.Diagnostics;

namespace EmbeddedRaft.Benchmarks.StoreLoad;

/// <summary>
/// A log-linear latency histogram in nanoseconds (the HdrHistogram layout): values below 256 ns
/// have a bucket each; above, every power of two is split into 128 buckets, so a percentile is
/// within 0.4% of the true sample. Fixed memory (about 18 KB) however many samples, so a
/// closed-loop caller can record every operation without allocating, and the load generator's
/// own garbage does not disturb what it measures.
/// </summary>
/// <remarks>Not thread-safe for <see cref="Record"/>; <see cref="RecordConcurrent"/> may be called from any thread.</remarks>
internal sealed class LatencyHistogram
{
    private const int SubBucketBits = 7;
    private const int SubBuckets = 1 << SubBucketBits;           // 128 buckets per power of two
    private const int ExactBuckets = SubBuckets * 2;             // 0..255 ns one bucket each
    private const int MaxExponent = 40 - SubBucketBits;          // up to 2^40 ns, about 18 minutes
    private const int BucketCount = ExactBuckets + (MaxExponent * SubBuckets);

    private static readonly double s_nanosecondsPerTick = 1e9 / Stopwatch.Frequency;

    private readonly int[] _counts = new int[BucketCount];
    private long _total;

    /// <summary>Samples recorded.</summary>
    public long Count => Interlocked.Read(ref _total);

    /// <summary>Records one operation that took <paramref name="elapsedTicks"/> Stopwatch ticks.</summary>
    public void Record(long elapsedTicks)
    {
        _counts[BucketOf(ToNanoseconds(elapsedTicks))]++;
        _total++;
    }

    /// <summary>As <see cref="Record"/>, safe when many threads record into this histogram at once.</summary>
    public void RecordConcurrent(long elapsedTicks)
    {
        Interlocked.Increment(ref _counts[BucketOf(ToNanoseconds(elapsedTicks))]);
        Interlocked.Increment(ref _total);
    }

    /// <summary>Adds every sample of <paramref name="other"/> to this one.</summary>
    public void Add(LatencyHistogram other)
    {
        for (int i = 0; i < BucketCount; i++)
        {
            _counts[i] += other._counts[i];
        }

        _total += other._total;
    }

    /// <summary>The latency in milliseconds at or below which <paramref name="quantile"/> of the samples fall (NaN when empty).</summary>
    public double PercentileMilliseconds(double quantile)
    {
        if (_total == 0)
        {
            return double.NaN;
        }

        // The sample of rank ceil(q * n), as the sorted-array percentile of the other load generator.
        long rank = Math.Max(1, (long)Math.Ceiling(quantile * _total));
        long seen = 0;
        for (int i = 0; i < BucketCount; i++)
        {
            seen += _counts[i];
            if (seen >= rank)
            {
                return MidpointNanoseconds(i) / 1e6;
            }
        }

        return MidpointNanoseconds(BucketCount - 1) / 1e6;
    }

    private static long ToNanoseconds(long ticks) => Math.Max(0, (long)(ticks * s_nanosecondsPerTick));

    internal static int BucketOf(long nanoseconds)
    {
        if (nanoseconds < ExactBuckets)
        {
            return (int)nanoseconds;
        }

        // Highest bit at position b >= 8: shift so the value keeps SubBucketBits + 1 significant
        // bits, i.e. lands in [128, 256), the upper half that this exponent's buckets cover.
        int highestBit = 63 - System.Numerics.BitOperations.LeadingZeroCount((ulong)nanoseconds);
        int exponent = highestBit - SubBucketBits;
        if (exponent > MaxExponent)
        {
            return BucketCount - 1;
        }

        int sub = (int)(nanoseconds >> exponent) - SubBuckets;
        return ExactBuckets + ((exponent - 1) * SubBuckets) + sub;
    }

    internal static double MidpointNanoseconds(int bucket)
    {
        if (bucket < ExactBuckets)
        {
            return bucket;
        }

        int exponent = ((bucket - ExactBuckets) / SubBuckets) + 1;
        long sub = ((bucket - ExactBuckets) % SubBuckets) + SubBuckets;
        long low = sub << exponent;
        long high = ((sub + 1) << exponent) - 1;
        return (low + high) / 2.0;
    }
}
