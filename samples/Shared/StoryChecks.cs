namespace EmbeddedRaft.Samples;

/// <summary>
/// What the story promised and whether it held. The sample exits 0 only when every check passed;
/// otherwise it names the ones that failed.
/// </summary>
internal sealed class StoryChecks
{
    private readonly List<(string Name, bool Passed, string Detail)> _results = [];
    private readonly Lock _lock = new();

    /// <summary>Every check so far, in the order made.</summary>
    public IReadOnlyList<(string Name, bool Passed, string Detail)> Results
    {
        get
        {
            lock (_lock)
            {
                return [.. _results];
            }
        }
    }

    /// <summary>True when no check failed.</summary>
    public bool AllPassed => Results.All(r => r.Passed);

    /// <summary>Records one check; returns <paramref name="passed"/>.</summary>
    public bool Check(string name, bool passed, string detail)
    {
        lock (_lock)
        {
            _results.Add((name, passed, detail));
        }

        return passed;
    }
}
