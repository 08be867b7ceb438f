using System.Collections.Concurrent;
using System.Diagnostics.Tracing;
using System.Globalization;

namespace EmbeddedRaft.Benchmarks.StoreLoad;

/// <summary>
/// What this process allocates, by type, from the runtime's own sampling: the GC's
/// <c>AllocationTick</c> event fires about once per 100 KB allocated and names the type of the
/// object that crossed the mark, so the bytes attributed to a type are proportional to what it
/// allocates (a sampling estimate, not an exact count). Switched on by the environment variable
/// <c>STORE_LOAD_ALLOCATION_TYPES=1</c>; each measured row of <c>store-load</c> and <c>cluster-load</c>
/// then prints its top types per operation (and <c>tcp-cpu</c> its top types per transport message, each row's measured rounds).
/// A diagnostic for finding what a row's "allocated bytes per operation" is made of.
/// </summary>
internal sealed class AllocationSampler : EventListener
{
    private const string RuntimeSource = "Microsoft-Windows-DotNETRuntime";
    private const EventKeywords GcKeyword = (EventKeywords)0x1;
    private const int AllocationTickEventId = 10;

    private readonly ConcurrentDictionary<string, long> _bytesByType = new();
    private int _measuring;

    private AllocationSampler()
    {
    }

    /// <summary>The sampler, when <c>STORE_LOAD_ALLOCATION_TYPES=1</c>; else null.</summary>
    public static AllocationSampler? Instance { get; } =
        Environment.GetEnvironmentVariable("STORE_LOAD_ALLOCATION_TYPES") == "1" ? new AllocationSampler() : null;

    public void Start()
    {
        _bytesByType.Clear();
        Volatile.Write(ref _measuring, 1);
    }

    /// <summary>Stops sampling; the top <paramref name="top"/> types as "type bytes-per-operation" lines.</summary>
    public string Stop(long operations, int top = 15)
    {
        Volatile.Write(ref _measuring, 0);
        if (operations <= 0)
        {
            return "no operations";
        }

        long total = _bytesByType.Values.Sum();
        var lines = _bytesByType.OrderByDescending(p => p.Value).Take(top)
            .Select(p => string.Create(CultureInfo.InvariantCulture, $"{(double)p.Value / operations,8:F0} B/op  {100.0 * p.Value / Math.Max(1, total),5:F1}%  {p.Key}"));
        return string.Create(CultureInfo.InvariantCulture, $"sampled {(double)total / operations:F0} B/op by type:\n") + string.Join('\n', lines);
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
        if (eventData.EventId != AllocationTickEventId || Volatile.Read(ref _measuring) == 0 || eventData.Payload is not { } payload)
        {
            return;
        }

        string? type = null;
        long amount = 0;
        for (int i = 0; i < payload.Count; i++)
        {
            switch (eventData.PayloadNames?[i])
            {
                case "TypeName":
                    type = payload[i] as string;
                    break;
                case "AllocationAmount64":
                    amount = Convert.ToInt64(payload[i], CultureInfo.InvariantCulture);
                    break;
                case "AllocationAmount" when amount == 0:
                    amount = Convert.ToInt64(payload[i], CultureInfo.InvariantCulture);
                    break;
            }
        }

        _bytesByType.AddOrUpdate(type ?? "?", amount, (_, sum) => sum + amount);
    }
}
