using System.Diagnostics;
using System.Runtime.InteropServices;
using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus;

/// <summary>
/// Diagnostic (EMBEDDEDRAFT_ENVELOPE_PROBE=1): for each holder of a normal entry's data, when it lets go,
/// how long after the entry was first appended to a log and whether the data had been promoted by then.
/// </summary>
internal static class EnvelopeProbe
{
    public static readonly bool Enabled = Environment.GetEnvironmentVariable("EMBEDDEDRAFT_ENVELOPE_PROBE") == "1";

    public const int Proposal = 0, Cache = 1, Applied = 2, StableDropped = 3, TailReplaced = 4, Stepped = 5, ChunkReleased = 6, Count = 7;

    private static readonly string[] s_names = ["proposal released (origin)", "cache evicted (each member)", "apply completed (each member)", "unstable: left stable window", "unstable: chunk no longer tail", "message stepped (receiver)", "unstable: chunk released"];
    private const int Mask = (1 << 18) - 1;
    private static readonly long[] s_index = new long[Mask + 1];
    private static readonly long[] s_born = new long[Mask + 1];
    private static readonly long[] s_n = new long[Count], s_ticks = new long[Count], s_gen1 = new long[Count], s_gen2 = new long[Count];
    private static readonly long[][] s_hist = Enumerable.Range(0, Count).Select(_ => new long[400]).ToArray();
    private static readonly Timer? s_timer;

    static EnvelopeProbe()
    {
        if (Enabled)
        {
            s_timer = new Timer(_ => Print(), null, 2000, 2000);
        }
    }

    public static void Born(in Entry e)
    {
        if (e.Data.Length < 100)
        {
            return;
        }

        int slot = (int)(e.Index & Mask);
        long old = Volatile.Read(ref s_index[slot]);
        if (old != (long)e.Index && Interlocked.CompareExchange(ref s_index[slot], (long)e.Index, old) == old)
        {
            Volatile.Write(ref s_born[slot], Stopwatch.GetTimestamp());
        }
    }

    public static void Dropped(int holder, in Entry e)
    {
        if (e.Data.Length < 100)
        {
            return;
        }

        int slot = (int)(e.Index & Mask);
        if (Volatile.Read(ref s_index[slot]) != (long)e.Index)
        {
            return;
        }

        long elapsed = Stopwatch.GetTimestamp() - Volatile.Read(ref s_born[slot]);
        if (elapsed < 0 || elapsed > 10 * Stopwatch.Frequency)
        {
            return;
        }

        Record(holder, elapsed, e.Data);
    }

    public static void Record(int holder, long elapsedTicks, ReadOnlyMemory<byte> data)
    {
        int gen = MemoryMarshal.TryGetArray(data, out var segment) && segment.Array is { } array ? GC.GetGeneration(array) : 0;
        Interlocked.Increment(ref s_n[holder]);
        Interlocked.Add(ref s_ticks[holder], elapsedTicks);
        if (gen >= 1)
        {
            Interlocked.Increment(ref s_gen1[holder]);
        }

        if (gen >= 2)
        {
            Interlocked.Increment(ref s_gen2[holder]);
        }

        double ms = elapsedTicks * 1000.0 / Stopwatch.Frequency;
        int bucket = Math.Clamp((int)(ms * 2), 0, 399);
        Interlocked.Increment(ref s_hist[holder][bucket]);
    }

    public static readonly System.Runtime.CompilerServices.ConditionalWeakTable<Entry[], object> Written = new();

    private static void Print()
    {
        var sb = new System.Text.StringBuilder();
        sb.Append(FormattableString.Invariant($"[envelope-probe {DateTime.UtcNow:HH:mm:ss}] gen0/1/2 {GC.CollectionCount(0)}/{GC.CollectionCount(1)}/{GC.CollectionCount(2)}\n"));
        for (int h = 0; h < Count; h++)
        {
            long n = Interlocked.Exchange(ref s_n[h], 0);
            long t = Interlocked.Exchange(ref s_ticks[h], 0);
            long g1 = Interlocked.Exchange(ref s_gen1[h], 0);
            long g2 = Interlocked.Exchange(ref s_gen2[h], 0);
            var hist = new long[400];
            for (int b = 0; b < 400; b++)
            {
                hist[b] = Interlocked.Exchange(ref s_hist[h][b], 0);
            }

            if (n == 0)
            {
                continue;
            }

            double Pct(double q)
            {
                long want = (long)Math.Ceiling(n * q), seen = 0;
                for (int b = 0; b < 400; b++)
                {
                    seen += hist[b];
                    if (seen >= want)
                    {
                        return (b + 1) / 2.0;
                    }
                }

                return 200;
            }

            sb.Append(FormattableString.Invariant($"  {s_names[h],-32} n {n,8}  mean {t * 1000.0 / Stopwatch.Frequency / n,6:F1} ms  p50<= {Pct(0.5),5:F1}  p90<= {Pct(0.9),5:F1}  promoted {100.0 * g1 / n,5:F1}%  gen2 {100.0 * g2 / n,5:F1}%\n"));
        }

        Console.Error.Write(sb.ToString());
    }
}
