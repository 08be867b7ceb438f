using System.Globalization;
using System.Text;

namespace EmbeddedRaft.Simulation.Tests.Simulator;

/// <summary>
/// The events of one simulated run, stamped with simulated time: a running hash of all of them
/// (two runs of one seed must end with the same <see cref="Hash"/>) and the events themselves, to
/// print what led to a violation.
/// </summary>
/// <remarks>
/// The hash is 64-bit FNV-1a over each line's UTF-16 code units and a separator: cheap enough to
/// hash every event, and any difference in content or order changes it with overwhelming
/// probability. Not thread-safe: the simulator records from its one thread.
/// </remarks>
internal sealed class SimulationTrace
{
    private const ulong FnvOffset = 14695981039346656037UL;
    private const ulong FnvPrime = 1099511628211UL;

    private readonly List<(TimeSpan At, string Line)> _events = [];
    private ulong _hash = FnvOffset;

    /// <summary>Events recorded so far.</summary>
    public long Count { get; private set; }

    /// <summary>The hash of every event so far, in order, as 16 hex digits.</summary>
    public string Hash => _hash.ToString("x16", CultureInfo.InvariantCulture);

    /// <summary>Records <paramref name="line"/> as having happened at <paramref name="at"/> of simulated time.</summary>
    public void Add(TimeSpan at, string line)
    {
        string stamped = string.Create(CultureInfo.InvariantCulture, $"{at.TotalMilliseconds,8:F0}ms {line}");
        ulong hash = _hash;
        foreach (char c in stamped)
        {
            hash = (hash ^ c) * FnvPrime;
        }

        _hash = (hash ^ '\n') * FnvPrime;
        Count++;
        _events.Add((at, stamped));
    }

    /// <summary>Mixes <paramref name="value"/> into the hash without recording a line: for events too many to keep (every message sent).</summary>
    public void Mix(ulong value)
    {
        _hash = (_hash ^ value) * FnvPrime;
        MixedValues++;
    }

    /// <summary>Values mixed into the hash with <see cref="Mix"/>.</summary>
    public long MixedValues { get; private set; }

    /// <summary>Every event, in order (to compare two runs that should have been equal).</summary>
    public IEnumerable<string> All => _events.Select(e => e.Line);

    /// <summary>The last <paramref name="count"/> events at or before <paramref name="until"/> (all of them when null), oldest first, as one block of text.</summary>
    public string Tail(int count, TimeSpan? until = null)
    {
        int end = _events.Count;
        if (until is { } limit)
        {
            while (end > 0 && _events[end - 1].At > limit)
            {
                end--;
            }
        }

        var text = new StringBuilder();
        foreach (var (_, line) in _events.Skip(Math.Max(0, end - count)).Take(Math.Min(count, end)))
        {
            text.Append("  ").AppendLine(line);
        }

        return text.ToString();
    }
}
