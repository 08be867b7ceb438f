using System.Runtime.InteropServices;

namespace EmbeddedRaft.Benchmarks;

/// <summary>
/// The calling thread's CPU time, exact to the nanosecond (Linux <c>clock_gettime(CLOCK_THREAD_CPUTIME_ID)</c>,
/// which brings the scheduler's account up to date; /proc's per-thread figures only move at ticks
/// and context switches, too coarse for a round of a few milliseconds).
/// </summary>
internal static partial class ThreadCpuClock
{
    private const int ClockThreadCpuTimeId = 3;

    public static long Nanoseconds()
    {
        if (ClockGetTime(ClockThreadCpuTimeId, out var time) != 0)
        {
            throw new InvalidOperationException($"clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed: errno {Marshal.GetLastPInvokeError()}.");
        }

        return (time.Seconds * 1_000_000_000L) + time.Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "clock_gettime", SetLastError = true)]
    private static partial int ClockGetTime(int clock, out TimeSpec time);

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }
}
