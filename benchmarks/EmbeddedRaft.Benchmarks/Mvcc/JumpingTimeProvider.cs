using System.Diagnostics;

namespace EmbeddedRaft.Benchmarks.Mvcc;

/// <summary>
/// The system clock whose monotonic timestamp can be moved forward at once, so 100,000 leases
/// granted over several seconds expire in the same instant; timers (the store's expiry check) keep
/// running on real time.
/// </summary>
internal sealed class JumpingTimeProvider : TimeProvider
{
    private long _offsetTicks;

    public override long TimestampFrequency => Stopwatch.Frequency;

    public override long GetTimestamp() => Stopwatch.GetTimestamp() + Volatile.Read(ref _offsetTicks);

    public void Jump(TimeSpan by) => Interlocked.Add(ref _offsetTicks, (long)(by.TotalSeconds * Stopwatch.Frequency));
}
