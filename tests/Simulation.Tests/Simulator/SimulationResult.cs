using System.Globalization;
using System.Text;

namespace EmbeddedRaft.Simulation.Tests.Simulator;

/// <summary>What one seed's run did and found: the trace hash (for the determinism check), the violations, and the figures.</summary>
internal sealed record SimulationResult(
    int Seed,
    string TraceHash,
    long TraceEvents,
    IReadOnlyList<string> Violations,
    string TraceTail,
    IReadOnlyList<string> NemesisLog,
    int Members,
    int CompletedOperations,
    int IndeterminateOperations,
    int WatchEvents,
    ulong HighestCommittedIndex,
    TimeSpan SimulatedTime,
    TimeSpan WallTime,
    IReadOnlyList<string> FullTrace)
{
    public bool Passed => Violations.Count == 0;

    /// <summary>Work that reached the simulation's scheduler from another thread (then the seed alone does not decide the run).</summary>
    public IReadOnlyList<string> DeterminismWarnings { get; init; } = [];

    /// <summary>The windows the client history was checked in (quiescent points + 1; 0 when the run stopped before the check).</summary>
    public int HistoryWindows { get; init; }

    /// <summary>Wall time of the end-of-run checks (watches, acknowledged writes, leases, linearizability), within <see cref="WallTime"/>.</summary>
    public TimeSpan CheckWallTime { get; init; }

    /// <summary>Write-ahead-log fsyncs a slow disk delayed.</summary>
    public long SlowFsyncs { get; init; }

    public string Summary => string.Create(CultureInfo.InvariantCulture,
        $"seed {Seed}: {Members} members, {CompletedOperations} operations completed, {IndeterminateOperations} indeterminate, {WatchEvents} watch events, committed index {HighestCommittedIndex}, {HistoryWindows} history windows, {SlowFsyncs} slow fsyncs, {SimulatedTime.TotalSeconds:0.0} s simulated in {WallTime.TotalSeconds:0.00} s (checks {CheckWallTime.TotalSeconds:0.00} s), trace {TraceEvents} events hash {TraceHash}");

    /// <summary>The report of a failed seed: the violations, the one command that replays it, and the events that led to it.</summary>
    public string Report(string testName)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Simulation seed {Seed} found {Violations.Count} violation(s):");
        foreach (string violation in Violations.Take(5))
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"- {violation}");
        }

        text.AppendLine(CultureInfo.InvariantCulture, $"Replay: SIM_SEED={Seed} dotnet test tests/Simulation.Tests -c Release --filter \"FullyQualifiedName~{testName}\"");
        text.AppendLine(CultureInfo.InvariantCulture, $"Nemesis: {string.Join("; ", NemesisLog)}");
        text.AppendLine("Last events:");
        text.Append(TraceTail);
        text.AppendLine(Summary);
        return text.ToString();
    }
}
