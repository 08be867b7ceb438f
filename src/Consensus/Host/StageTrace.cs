using System.Diagnostics;

namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// THROW-AWAY TRACE (session 24, p24; reverted on the branch): per node, timestamps per log index
/// at each stage of the write path, and per own proposal the time spent in each stage, printed
/// every 2 s to stderr when P24TRACE=1.
/// </summary>
internal sealed class StageTrace
{
    public static readonly bool Enabled = Environment.GetEnvironmentVariable("P24TRACE") == "1";

    private const int RingBits = 20;
    private const int Mask = (1 << RingBits) - 1;

    public enum Stamp
    {
        Ready,
        Written,
        Durable,
        Committed,
        ApplyTaken,
        Gate,
        SmStart,
        SmEnd,
        Count,
    }

    // Stages of an own proposal, from its call to its caller's release.
    public static readonly string[] StageNames =
    [
        "call->loop", "loop->ready", "ready->written", "written->durable", "durable->committed",
        "committed->applyTaken", "applyTaken->gate", "gate->smStart", "smStart->smEnd", "smEnd->released", "TOTAL call->released",
    ];

    private readonly ulong _id;
    private readonly long[][] _stamps = new long[(int)Stamp.Count][];

    // [leader?1:0][stage][0]=sum ticks, [1]=count, [2..2+40] log2 buckets of µs
    private readonly long[,,] _stages = new long[2, 11, 42];

    // Batch counters: name -> (sum, count, sumDurationTicks)
    private readonly long[] _readies = new long[2]; // entries, readies
    private readonly long[] _syncs = new long[4]; // items, turns, entries, fsync ticks
    private readonly long[] _applies = new long[4]; // entries, batches, sm ticks, whole apply ticks (taken->end)
    private readonly long[] _storeSplit = new long[4]; // decode+queue ticks, queued->ci done ticks, ci done->resumed ticks, batches

    // P25 counters: turns, proposeBatches, proposals, appendsSent, appendEntries, commitAdvances, committedEntries,
    // holdBacks, lastCalls, lastCallsWrote, compactions, appliedWakes, turnTicks(loop busy), maxQueuedApplies held
    public static readonly string[] CounterNames = ["turns", "proposeBatches", "proposals", "appends", "appendEntries", "commits", "committedEntries", "holdBacks", "lastCalls", "lastCallsWrote", "compactions", "heldByApplies", "turnBusyUs", "inboxItems", "stepMsgs"];
    private readonly long[] _counters = new long[15];

    public void Count(int counter, long n = 1) => Interlocked.Add(ref _counters[counter], n);

    private static readonly List<StageTrace> s_all = [];
    private static Timer? s_timer;
    private static readonly long s_start = Stopwatch.GetTimestamp();

    public StageTrace(ulong id)
    {
        _id = id;
        for (int i = 0; i < _stamps.Length; i++)
        {
            _stamps[i] = new long[1 << RingBits];
        }

        lock (s_all)
        {
            s_all.Add(this);
            s_timer ??= new Timer(_ => PrintAll(), null, 2000, 2000);
        }
    }

    public static long Now => Stopwatch.GetTimestamp();

    public void Mark(Stamp stamp, ulong index, long now) => _stamps[(int)stamp][(int)(index & Mask)] = now;

    public void MarkRange(Stamp stamp, ReadOnlySpan<Messages.Entry> entries, long now)
    {
        foreach (var e in entries)
        {
            _stamps[(int)stamp][(int)(e.Index & Mask)] = now;
        }
    }

    public long Get(Stamp stamp, ulong index) => _stamps[(int)stamp][(int)(index & Mask)];

    public void Ready(int entries)
    {
        Interlocked.Add(ref _readies[0], entries);
        Interlocked.Increment(ref _readies[1]);
    }

    public void Synced(int items, int entries, long ticks)
    {
        Interlocked.Add(ref _syncs[0], items);
        Interlocked.Increment(ref _syncs[1]);
        Interlocked.Add(ref _syncs[2], entries);
        Interlocked.Add(ref _syncs[3], ticks);
    }

    public void Applied(int entries, long smTicks, long wholeTicks)
    {
        Interlocked.Add(ref _applies[0], entries);
        Interlocked.Increment(ref _applies[1]);
        Interlocked.Add(ref _applies[2], smTicks);
        Interlocked.Add(ref _applies[3], wholeTicks);
    }

    /// <summary>Own proposal released: its stages from its stamps.</summary>
    public void Released(bool leader, long call, long loop, ulong index, long now)
    {
        if (call == 0 || loop == 0 || index == 0)
        {
            return;
        }

        long ready = Get(Stamp.Ready, index), written = Get(Stamp.Written, index), durable = Get(Stamp.Durable, index),
            committed = Get(Stamp.Committed, index), taken = Get(Stamp.ApplyTaken, index), gate = Get(Stamp.Gate, index),
            smStart = Get(Stamp.SmStart, index), smEnd = Get(Stamp.SmEnd, index);
        long[] points = [call, loop, ready, written, durable, committed, taken, gate, smStart, smEnd, now];
        int l = leader ? 1 : 0;
        for (int s = 0; s < 10; s++)
        {
            Add(l, s, points[s + 1] - points[s]);
        }

        Add(l, 10, now - call);
    }

    private void Add(int l, int s, long ticks)
    {
        if (ticks < 0)
        {
            ticks = 0;
        }

        Interlocked.Add(ref _stages[l, s, 0], ticks);
        Interlocked.Increment(ref _stages[l, s, 1]);
        long us = ticks * 1_000_000 / Stopwatch.Frequency;
        int bucket = us <= 0 ? 0 : Math.Min(39, 64 - (int)ulong.LeadingZeroCount((ulong)us));
        Interlocked.Increment(ref _stages[l, s, 2 + bucket]);
    }

    private static double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;

    private static void PrintAll()
    {
        StageTrace[] all;
        lock (s_all)
        {
            all = [.. s_all];
        }

        var sb = new System.Text.StringBuilder();
        double t = Ms(Stopwatch.GetTimestamp() - s_start) / 1000;
        foreach (var n in all)
        {
            sb.Append(System.FormattableString.Invariant($"P24T t={t:F1} node={n._id}"));
            long re = Interlocked.Exchange(ref n._readies[0], 0), rc = Interlocked.Exchange(ref n._readies[1], 0);
            long si = Interlocked.Exchange(ref n._syncs[0], 0), sc = Interlocked.Exchange(ref n._syncs[1], 0), se = Interlocked.Exchange(ref n._syncs[2], 0), st = Interlocked.Exchange(ref n._syncs[3], 0);
            long ae = Interlocked.Exchange(ref n._applies[0], 0), ac = Interlocked.Exchange(ref n._applies[1], 0), asm = Interlocked.Exchange(ref n._applies[2], 0), aw = Interlocked.Exchange(ref n._applies[3], 0);
            long q0 = Interlocked.Exchange(ref n._storeSplit[0], 0), q1 = Interlocked.Exchange(ref n._storeSplit[1], 0), q2 = Interlocked.Exchange(ref n._storeSplit[2], 0), q3 = Interlocked.Exchange(ref n._storeSplit[3], 0);
            sb.Append(System.FormattableString.Invariant($" readies/s={rc / 2.0:F0} ent/ready={(rc > 0 ? (double)re / rc : 0):F0}"));
            sb.Append(System.FormattableString.Invariant($" fsyncs/s={sc / 2.0:F0} readies/fsync={(sc > 0 ? (double)si / sc : 0):F2} ent/fsync={(sc > 0 ? (double)se / sc : 0):F0} fsync_ms={(sc > 0 ? Ms(st) / sc : 0):F2} sync_busy={Ms(st) / 20:F0}%"));
            sb.Append(System.FormattableString.Invariant($" applies/s={ac / 2.0:F0} ent/apply={(ac > 0 ? (double)ae / ac : 0):F0} sm_ms={(ac > 0 ? Ms(asm) / ac : 0):F2} apply_ms={(ac > 0 ? Ms(aw) / ac : 0):F2} apply_busy={Ms(aw) / 20:F0}%"));
            sb.AppendLine();
            sb.Append(System.FormattableString.Invariant($"P25C t={t:F1} node={n._id}"));
            for (int c = 0; c < n._counters.Length; c++)
            {
                sb.Append(System.FormattableString.Invariant($" {CounterNames[c]}/s={Interlocked.Exchange(ref n._counters[c], 0) / 2.0:F0}"));
            }

            sb.AppendLine();
            for (int l = 1; l >= 0; l--)
            {
                long count = Interlocked.Read(ref n._stages[l, 10, 1]);
                if (count == 0)
                {
                    continue;
                }

                sb.Append(System.FormattableString.Invariant($"P24T t={t:F1} node={n._id} {(l == 1 ? "own-as-leader" : "own-as-follower")} n={count}:"));
                for (int s = 0; s < 11; s++)
                {
                    long sum = Interlocked.Exchange(ref n._stages[l, s, 0], 0);
                    long c = Interlocked.Exchange(ref n._stages[l, s, 1], 0);
                    long[] buckets = new long[40];
                    for (int b = 0; b < 40; b++)
                    {
                        buckets[b] = Interlocked.Exchange(ref n._stages[l, s, 2 + b], 0);
                    }

                    sb.Append(System.FormattableString.Invariant($" {StageNames[s]} mean={(c > 0 ? Ms(sum) / c : 0):F2} p50={Pct(buckets, c, 0.5):F2} p99={Pct(buckets, c, 0.99):F2};"));
                }

                sb.AppendLine();
            }
        }

        Console.Error.Write(sb.ToString());
    }

    // Upper bound of the log2 bucket holding the quantile, in ms.
    private static double Pct(long[] buckets, long count, double q)
    {
        if (count == 0)
        {
            return 0;
        }

        long target = (long)Math.Ceiling(q * count), seen = 0;
        for (int b = 0; b < buckets.Length; b++)
        {
            seen += buckets[b];
            if (seen >= target)
            {
                return b == 0 ? 0.001 : (1L << b) / 1000.0;
            }
        }

        return double.NaN;
    }

    /// <summary>Store's split of one apply batch (set through RaftNode by the state machine: here via a static hook).</summary>
    public void StoreSplit(long queueTicks, long writerTicks, long resumeTicks)
    {
        Interlocked.Add(ref _storeSplit[0], queueTicks);
        Interlocked.Add(ref _storeSplit[1], writerTicks);
        Interlocked.Add(ref _storeSplit[2], resumeTicks);
        Interlocked.Increment(ref _storeSplit[3]);
    }
}
