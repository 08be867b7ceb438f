using System.Globalization;

namespace EmbeddedRaft.Benchmarks.Consensus;

/// <summary>
/// What the garbage collector cost a measured window, cheaply enough to print beside every row: the
/// collections per generation, the time the runtime held every managed thread suspended
/// (<see cref="GC.GetTotalPauseDuration"/>: a foreground collection's whole work, a background one's
/// two short suspensions) and the CPU of the background collector's thread (<c>.NET BGC</c>, read
/// from <c>/proc/self/task</c> on Linux; the marking a background gen2 collection does beside the
/// program). Pause plus background CPU is the collector's share of the process's CPU to within
/// the pause's own wall/CPU difference (on 2 cores a pause is one collecting thread, the others stopped).
/// </summary>
internal readonly record struct GcCost(int Gen0, int Gen1, int Gen2, TimeSpan Pause, TimeSpan? BackgroundCpu)
{
    // The kernel's clock ticks per second for /proc/*/stat's utime and stime (USER_HZ, 100 on Linux).
    private const double TicksPerSecond = 100;

    public static GcCost Now() => new(
        GC.CollectionCount(0),
        GC.CollectionCount(1),
        GC.CollectionCount(2),
        GC.GetTotalPauseDuration(),
        BackgroundCollectorCpu());

    public static GcCost operator -(GcCost after, GcCost before) => new(
        after.Gen0 - before.Gen0,
        after.Gen1 - before.Gen1,
        after.Gen2 - before.Gen2,
        after.Pause - before.Pause,
        after.BackgroundCpu - before.BackgroundCpu);

    /// <summary>gen0/gen1/gen2 collections, then pause and background CPU in microseconds per <paramref name="operations"/>.</summary>
    public string Describe(long operations)
    {
        double ops = Math.Max(1, operations);
        string background = BackgroundCpu is { } b ? (b.TotalMicroseconds / ops).ToString("F2", CultureInfo.InvariantCulture) : "n/a";
        return string.Create(CultureInfo.InvariantCulture, $"{Gen0}/{Gen1}/{Gen2} | {Pause.TotalMicroseconds / ops:F2} | {background}");
    }

    // The CPU time of the background GC thread(s); null where /proc is not there.
    private static TimeSpan? BackgroundCollectorCpu()
    {
        try
        {
            long ticks = 0;
            foreach (string task in Directory.EnumerateDirectories("/proc/self/task"))
            {
                string name;
                string stat;
                try
                {
                    name = File.ReadAllText(Path.Combine(task, "comm")).TrimEnd('\n');
                    if (!name.StartsWith(".NET BGC", StringComparison.Ordinal))
                    {
                        continue;
                    }

                    stat = File.ReadAllText(Path.Combine(task, "stat"));
                }
                catch (IOException)
                {
                    continue; // the thread ended while being read
                }

                // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                ticks += long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
            }

            return TimeSpan.FromSeconds(ticks / TicksPerSecond);
        }
#pragma warning disable CA1031 // Not Linux: the figure is informative only.
        catch (Exception)
#pragma warning restore CA1031
        {
            return null;
        }
    }
}
