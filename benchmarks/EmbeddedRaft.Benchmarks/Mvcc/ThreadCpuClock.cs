using System.Runtime.InteropServices;

namespace EmbeddedRaft.Benchmarks.Mvcc;

/// <summary>
/// The calling thread's CPU time, exact to the nanosecond at the moment of the call
/// (<c>clock_gettime(CLOCK_THREAD_CPUTIME_ID)</c>, Linux). Why not <c>/proc/thread-self/schedstat</c>:
/// for a thread that is running, the kernel updates that figure only at its next tick or switch, so
/// a span of a millisecond or two measured on the running thread reads as 0 or a whole tick.
/// </summary>
internal static partial class ThreadCpuClock
{
    private const int ClockThreadCpuTimeId = 3;

    /// <summary>CPU time the calling thread has run, in nanoseconds.</summary>
    /// <exception cref="InvalidOperationException">The clock could not be read (not Linux).</exception>
    public static long NowNs()
    {
        if (ClockGetTime(ClockThreadCpuTimeId, out var now) != 0)
        {
            throw new InvalidOperationException($"clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed (errno {Marshal.GetLastPInvokeError()}).");
        }

        return (now.Seconds * 1_000_000_000L) + now.Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "clock_gettime", SetLastError = true)]
    private static partial int ClockGetTime(int clockId, out TimeSpec time);

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }
}
