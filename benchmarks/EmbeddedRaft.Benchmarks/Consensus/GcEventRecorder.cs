using System.Diagnostics.Tracing;
using System.Globalization;
using System.Text;

namespace EmbeddedRaft.Benchmarks.Consensus;

/// <summary>
/// What drives the garbage collector during one measured window (<c>cluster-load --gc-events</c>):
/// an in-process listener on the runtime's GC events (keyword 0x1, verbose) that counts collections
/// by generation, reason and type, sums the bytes each collection promoted out of gen1 into gen2
/// (<c>GCHeapStats</c>), and attributes the large object heap's allocation ticks (one event per
/// ~100 KB allocated of that kind) to the allocated type. Turned on only when asked: the allocation
/// ticks cost a little CPU.
/// </summary>
internal sealed class GcEventRecorder : EventListener
{
    private const string RuntimeSource = "Microsoft-Windows-DotNETRuntime";
    private const int GCStartEventId = 1;
    private const int GCHeapStatsEventId = 4;
    private const int GCAllocationTickEventId = 10;

    // The runtime's GC reasons (gc_reason in gcinterface.h), for the report.
    private static readonly string[] s_reasons =
    [
        "AllocSmall", "Induced", "LowMemory", "Empty", "AllocLarge", "OutOfSpaceSOH", "OutOfSpaceLOH",
        "InducedNotForced", "Internal", "InducedLowMemory", "InducedCompacting", "LowMemoryHost", "PMFullGC",
        "LowMemoryHostBlocking", "BGCTuning",
    ];

    private static readonly string[] s_types = ["blocking", "background", "blocking-during-background"];

    private readonly Lock _lock = new();
    private readonly Dictionary<string, int> _collections = [];
    private readonly Dictionary<string, long> _largeAllocations = [];
    private readonly Dictionary<string, long> _smallAllocations = [];
    private long _promotedToGen2Bytes;
    private long _promotedToGen1Bytes;
    private volatile bool _recording;

    /// <summary>Starts counting (events before this call are ignored).</summary>
    public void Start()
    {
        lock (_lock)
        {
            _collections.Clear();
            _largeAllocations.Clear();
            _smallAllocations.Clear();
            _promotedToGen2Bytes = 0;
            _promotedToGen1Bytes = 0;
        }

        _recording = true;
    }

    /// <summary>Stops counting and describes the window: per applied proposal where given.</summary>
    public string Stop(long proposals)
    {
        _recording = false;
        lock (_lock)
        {
            var text = new StringBuilder();
            var per = Math.Max(1, proposals);
            text.Append(CultureInfo.InvariantCulture, $"  GCs: {string.Join(", ", _collections.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key} {p.Value}"))}");
            text.AppendLine();
            text.Append(CultureInfo.InvariantCulture, $"  promoted gen0->gen1 {_promotedToGen1Bytes / 1024.0 / 1024.0:F1} MiB ({(double)_promotedToGen1Bytes / per:F0} B per proposal), gen1->gen2 {_promotedToGen2Bytes / 1024.0 / 1024.0:F1} MiB ({(double)_promotedToGen2Bytes / per:F0} B per proposal)");
            text.AppendLine();
            text.Append(CultureInfo.InvariantCulture, $"  LOH allocations (ticks x ~100 KB): {Top(_largeAllocations)}");
            text.AppendLine();
            text.Append(CultureInfo.InvariantCulture, $"  small-object allocations by type (ticks x ~100 KB): {Top(_smallAllocations)}");
            return text.ToString();
        }
    }

    protected override void OnEventSourceCreated(EventSource eventSource)
    {
        if (eventSource.Name == RuntimeSource)
        {
            EnableEvents(eventSource, EventLevel.Verbose, (EventKeywords)0x1);
        }
    }

    protected override void OnEventWritten(EventWrittenEventArgs eventData)
    {
        if (!_recording || eventData.Payload is null || eventData.PayloadNames is null)
        {
            return;
        }

        switch (eventData.EventId)
        {
            case GCStartEventId:
            {
                var depth = Convert.ToInt32(Field(eventData, "Depth"), CultureInfo.InvariantCulture);
                var reason = Convert.ToInt32(Field(eventData, "Reason"), CultureInfo.InvariantCulture);
                var type = Convert.ToInt32(Field(eventData, "Type"), CultureInfo.InvariantCulture);
                var key = string.Create(CultureInfo.InvariantCulture, $"gen{depth} {(reason < s_reasons.Length ? s_reasons[reason] : reason.ToString(CultureInfo.InvariantCulture))} {(type < s_types.Length ? s_types[type] : type.ToString(CultureInfo.InvariantCulture))}");
                lock (_lock)
                {
                    _collections[key] = _collections.GetValueOrDefault(key) + 1;
                }

                break;
            }

            case GCHeapStatsEventId:
            {
                var toGen1 = Convert.ToInt64(Field(eventData, "TotalPromotedSize0"), CultureInfo.InvariantCulture);
                var toGen2 = Convert.ToInt64(Field(eventData, "TotalPromotedSize1"), CultureInfo.InvariantCulture);
                lock (_lock)
                {
                    _promotedToGen1Bytes += toGen1;
                    _promotedToGen2Bytes += toGen2;
                }

                break;
            }

            case GCAllocationTickEventId:
            {
                var kind = Convert.ToInt32(Field(eventData, "AllocationKind"), CultureInfo.InvariantCulture);
                var typeName = Field(eventData, "TypeName") as string ?? "?";
                lock (_lock)
                {
                    var table = kind == 1 ? _largeAllocations : _smallAllocations;
                    table[typeName] = table.GetValueOrDefault(typeName) + 1;
                }

                break;
            }
        }
    }

    private static object? Field(EventWrittenEventArgs e, string name)
    {
        var i = e.PayloadNames!.IndexOf(name);
        return i < 0 ? 0 : e.Payload![i];
    }

    private static string Top(Dictionary<string, long> table) =>
        table.Count == 0 ? "none" : string.Join(", ", table.OrderByDescending(p => p.Value).Take(12).Select(p => $"{p.Key} {p.Value}"));
}
