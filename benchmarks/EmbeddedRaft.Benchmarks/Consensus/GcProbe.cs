using System.Collections.Concurrent;
using System.Diagnostics.Tracing;
using System.Globalization;

namespace EmbeddedRaft.Benchmarks.Consensus;

/// <summary>
/// What the garbage collector did during a measured row, from the runtime's own GC events in this
/// process: collections by generation, kind (blocking, background, foreground) and reason; the
/// execution-engine pauses (suspend begin to restart end: total, longest, how many over 2 and 5 ms);
/// the bytes each collection promoted (gen0 → gen1, gen1 → gen2, survived in gen2 and the large-object
/// heap); and the allocations by type on the large-object heap and on the small-object heap (the
/// runtime's <c>AllocationTick</c>, about one event per 100 KB, so a sampling estimate; the type named
/// is the one whose allocation crossed the 100 KB mark); and the thread pool's completed work items
/// per operation (each a hand-off that may wake an idle worker). Switched on by
/// <c>CLUSTER_LOAD_GC=1</c>; each measured row of <c>cluster-load</c> and <c>store-load</c> then
/// prints one comment line. A diagnostic (the listener costs some CPU per collection and per 100 KB
/// allocated), not for A/B figures.
/// </summary>
internal sealed class GcProbe : EventListener
{
    private const string RuntimeSource = "Microsoft-Windows-DotNETRuntime";
    private const EventKeywords GcKeyword = (EventKeywords)0x1;
    private const int GcStartId = 1;
    private const int GcRestartEeEndId = 3;
    private const int GcHeapStatsId = 4;
    private const int GcSuspendEeBeginId = 9;
    private const int AllocationTickId = 10;

    private static readonly string[] s_reasons =
    [
        "alloc-small", "induced", "low-memory", "empty", "alloc-large", "oos-soh", "oos-loh", "induced-not-forced",
        "internal", "induced-low-memory", "induced-compacting", "low-memory-host", "pm-full", "low-memory-host-blocking",
    ];

    private static readonly string[] s_types = ["blocking", "background", "foreground"];

    private readonly ConcurrentDictionary<string, long> _collections = new();
    private readonly ConcurrentDictionary<string, long> _largeByType = new();
    private readonly ConcurrentDictionary<string, long> _smallByType = new();
    private readonly Lock _lock = new();
    private readonly List<double> _pausesMs = [];
    private DateTime _suspendedAt;
    private long _promoted0;
    private long _promoted1;
    private long _survived2;
    private long _survivedLoh;
    private long _poolWorkItemsBefore;
    private int _measuring;

    private GcProbe()
    {
    }

    /// <summary>The probe, when <c>CLUSTER_LOAD_GC=1</c>; else null.</summary>
    public static GcProbe? Instance { get; } =
        Environment.GetEnvironmentVariable("CLUSTER_LOAD_GC") == "1" ? new GcProbe() : null;

    public void Start()
    {
        lock (_lock)
        {
            _collections.Clear();
            _largeByType.Clear();
            _smallByType.Clear();
            _pausesMs.Clear();
            _promoted0 = _promoted1 = _survived2 = _survivedLoh = 0;
            _poolWorkItemsBefore = ThreadPool.CompletedWorkItemCount;
        }

        Volatile.Write(ref _measuring, 1);
    }

    /// <summary>Stops recording; one line describing the row per <paramref name="operations"/>.</summary>
    public string Stop(long operations)
    {
        Volatile.Write(ref _measuring, 0);
        lock (_lock)
        {
            double ops = Math.Max(1, operations);
            var sorted = _pausesMs.OrderBy(p => p).ToArray();
            string Pct(double q) => sorted.Length == 0 ? "n/a" : sorted[Math.Min(sorted.Length - 1, (int)(q * sorted.Length))].ToString("F2", CultureInfo.InvariantCulture);
            var collections = string.Join(", ", _collections.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key} {p.Value}"));
            var large = string.Join(", ", _largeByType.OrderByDescending(p => p.Value).Take(6)
                .Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Key} {p.Value / ops:F1}")));
            var small = string.Join(", ", _smallByType.OrderByDescending(p => p.Value).Take(12)
                .Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Key} {p.Value / ops:F0}")));
            long poolWorkItems = ThreadPool.CompletedWorkItemCount - _poolWorkItemsBefore;
            return string.Create(
                CultureInfo.InvariantCulture,
                $"thread-pool work items per op {poolWorkItems / ops:F2}; GC: {collections}; pauses {sorted.Length}, total {sorted.Sum():F0} ms, p50 {Pct(0.5)} ms, p90 {Pct(0.9)} ms, max {(sorted.Length == 0 ? 0 : sorted[^1]):F2} ms, over 2 ms {sorted.Count(p => p > 2)}, over 5 ms {sorted.Count(p => p > 5)}; "
                + $"promoted B per op: gen0→1 {_promoted0 / ops:F0}, gen1→2 {_promoted1 / ops:F0}, gen2 survived {_survived2 / ops:F0}, LOH survived {_survivedLoh / ops:F0}; "
                + $"LOH allocated B per op by type (sampled): {(large.Length == 0 ? "none" : large)}; "
                + $"small-object heap allocated B per op by type (sampled, every process thread): {(small.Length == 0 ? "none" : small)}");
        }
    }

    protected override void OnEventSourceCreated(EventSource eventSource)
    {
        if (eventSource.Name == RuntimeSource)
        {
            EnableEvents(eventSource, EventLevel.Verbose, GcKeyword);
        }
    }

    protected override void OnEventWritten(EventWrittenEventArgs eventData)
    {
        if (Volatile.Read(ref _measuring) == 0 || eventData.Payload is not { } payload)
        {
            return;
        }

        switch (eventData.EventId)
        {
            case GcStartId:
            {
                uint depth = Get<uint>(eventData, "Depth");
                uint reason = Get<uint>(eventData, "Reason");
                uint type = Get<uint>(eventData, "Type");
                string key = $"gen{depth} {(type < s_types.Length ? s_types[type] : type.ToString(CultureInfo.InvariantCulture))} {(reason < s_reasons.Length ? s_reasons[reason] : reason.ToString(CultureInfo.InvariantCulture))}";
                _collections.AddOrUpdate(key, 1, (_, n) => n + 1);
                break;
            }

            case GcSuspendEeBeginId:
                lock (_lock)
                {
                    _suspendedAt = eventData.TimeStamp;
                }

                break;
            case GcRestartEeEndId:
                lock (_lock)
                {
                    if (_suspendedAt != default)
                    {
                        _pausesMs.Add((eventData.TimeStamp - _suspendedAt).TotalMilliseconds);
                        _suspendedAt = default;
                    }
                }

                break;
            case GcHeapStatsId:
                lock (_lock)
                {
                    _promoted0 += (long)Get<ulong>(eventData, "TotalPromotedSize0");
                    _promoted1 += (long)Get<ulong>(eventData, "TotalPromotedSize1");
                    _survived2 += (long)Get<ulong>(eventData, "TotalPromotedSize2");
                    _survivedLoh += (long)Get<ulong>(eventData, "TotalPromotedSize3");
                }

                break;
            case AllocationTickId:
            {
                // AllocationKind 0: the small-object heap, 1: the large-object heap (2: pinned).
                uint kind = Get<uint>(eventData, "AllocationKind");
                if (kind > 1)
                {
                    return;
                }

                long amount = (long)Get<ulong>(eventData, "AllocationAmount64");
                string type = eventData.PayloadNames?.IndexOf("TypeName") is int i and >= 0 ? payload[i] as string ?? "?" : "?";
                (kind == 1 ? _largeByType : _smallByType).AddOrUpdate(type, amount, (_, sum) => sum + amount);
                break;
            }
        }
    }

    private static T Get<T>(EventWrittenEventArgs eventData, string name)
        where T : struct
    {
        int i = eventData.PayloadNames?.IndexOf(name) ?? -1;
        return i >= 0 && eventData.Payload![i] is { } value ? (T)Convert.ChangeType(value, typeof(T), CultureInfo.InvariantCulture) : default;
    }
}
