using System.Diagnostics;

namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>THROW-AWAY TRACE (session 24, p24; reverted): an apply batch's split in the store, printed every 2 s to stderr when P24TRACE=1.</summary>
internal static class ApplyTrace
{
    public static readonly bool Enabled = Environment.GetEnvironmentVariable("P24TRACE") == "1";

    private static readonly Dictionary<ulong, long[]> s_byMember = [];
    private static readonly long s_start = Stopwatch.GetTimestamp();
    private static Timer? s_timer;

    public static void Record(ulong member, int commands, long queue, long writer, long resume)
    {
        long[] a;
        lock (s_byMember)
        {
            if (!s_byMember.TryGetValue(member, out a!))
            {
                a = new long[5];
                s_byMember[member] = a;
                s_timer ??= new Timer(_ => Print(), null, 2000, 2000);
            }

            a[0] += commands;
            a[1]++;
            a[2] += queue;
            a[3] += writer;
            a[4] += resume;
        }
    }

    private static double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;

    private static void Print()
    {
        var sb = new System.Text.StringBuilder();
        double t = Ms(Stopwatch.GetTimestamp() - s_start) / 1000;
        lock (s_byMember)
        {
            foreach (var (member, a) in s_byMember)
            {
                double n = Math.Max(1, a[1]);
                sb.AppendLine(FormattableString.Invariant($"P24S t={t:F1} member={member} batches={a[1]} cmds/batch={a[0] / n:F0} decode+queue_ms={Ms(a[2]) / n:F2} queued->writerDone_ms={Ms(a[3]) / n:F2} writerDone->resumed_ms={Ms(a[4]) / n:F2}"));
                Array.Clear(a);
            }
        }

        Console.Error.Write(sb.ToString());
    }
}
