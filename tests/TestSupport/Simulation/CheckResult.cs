using System.Text;

namespace EmbeddedRaft.TestSupport.Simulation;

/// <summary>
/// What one checker found: no violation (passed) or the violations, each human-readable, and a
/// summary of what was checked (so a pass that checked nothing shows). Immutable.
/// </summary>
public sealed class CheckResult
{
    /// <summary>How many violations <see cref="ToString"/> lists before it says how many more there are.</summary>
    public const int ViolationsShown = 20;

    /// <summary>Creates a result.</summary>
    public CheckResult(string checker, string summary, IReadOnlyList<CheckViolation> violations)
    {
        ArgumentNullException.ThrowIfNull(checker);
        ArgumentNullException.ThrowIfNull(summary);
        ArgumentNullException.ThrowIfNull(violations);
        Checker = checker;
        Summary = summary;
        Violations = violations;
    }

    /// <summary>Which checker ("watch", "lease", "convergence", ...).</summary>
    public string Checker { get; }

    /// <summary>What was checked (counts), for the report.</summary>
    public string Summary { get; }

    /// <summary>Every violation found, in the order found.</summary>
    public IReadOnlyList<CheckViolation> Violations { get; }

    /// <summary>Whether no rule was broken.</summary>
    public bool Passed => Violations.Count == 0;

    /// <summary>The violations of several results as one (the checkers' names joined).</summary>
    public static CheckResult Combine(params CheckResult[] results)
    {
        ArgumentNullException.ThrowIfNull(results);
        return new CheckResult(
            string.Join("+", results.Select(r => r.Checker)),
            string.Join("; ", results.Select(r => $"{r.Checker}: {r.Summary}")),
            results.SelectMany(r => r.Violations).ToList());
    }

    /// <inheritdoc/>
    public override string ToString()
    {
        if (Passed)
        {
            return $"{Checker}: passed ({Summary})";
        }

        var text = new StringBuilder().Append(Checker).Append(": ").Append(Violations.Count).Append(" violation(s) (").Append(Summary).Append(')');
        foreach (CheckViolation violation in Violations.Take(ViolationsShown))
        {
            text.Append("\n  ").Append(violation);
        }

        if (Violations.Count > ViolationsShown)
        {
            text.Append("\n  ... and ").Append(Violations.Count - ViolationsShown).Append(" more");
        }

        return text.ToString();
    }
}
