using System.Globalization;

namespace EmbeddedRaft.TestSupport;

/// <summary>
/// Chooses the seeds a randomized test runs, the same way everywhere: a default range that keeps
/// the suite fast, one seed to replay a failure, or a larger range for a soak. Every randomized
/// test prints the variable and seed that replay a failure, so the choice must be the same one.
/// </summary>
public static class TestSeeds
{
    /// <summary>
    /// The seeds to run: only the value of <paramref name="replayVariable"/> when it is set
    /// (replaying one failure); otherwise <paramref name="defaultCount"/> seeds from
    /// <paramref name="first"/>, or as many as <paramref name="soakVariable"/> says when set.
    /// A soak variable named <c>X_SOAK_SEEDS</c> has a first-seed companion <c>X_FIRST_SEED</c>
    /// that moves the start of the range, so a soak can run seeds never run before in one process
    /// (a process per seed costs more start-up than most seeds take).
    /// </summary>
    /// <exception cref="InvalidOperationException">A variable is set to something that is not a whole number.</exception>
    public static IReadOnlyList<int> Choose(string replayVariable, string soakVariable, int first, int defaultCount)
    {
        if (Read(replayVariable) is int replay)
        {
            return [replay];
        }

        int count = Read(soakVariable) ?? defaultCount;
        if (FirstSeedVariable(soakVariable) is string firstVariable && Read(firstVariable) is int chosenFirst)
        {
            first = chosenFirst;
        }

        return Enumerable.Range(first, count).ToList();
    }

    /// <summary>The first-seed companion of a soak variable: <c>X_SOAK_SEEDS</c> gives <c>X_FIRST_SEED</c>; other names have none.</summary>
    private static string? FirstSeedVariable(string soakVariable) =>
        soakVariable.EndsWith("_SOAK_SEEDS", StringComparison.Ordinal)
            ? string.Concat(soakVariable.AsSpan(0, soakVariable.Length - "_SOAK_SEEDS".Length), "_FIRST_SEED")
            : null;

    private static int? Read(string variable)
    {
        string? value = Environment.GetEnvironmentVariable(variable);
        if (string.IsNullOrEmpty(value))
        {
            return null;
        }

        return int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int parsed)
            ? parsed
            : throw new InvalidOperationException($"Environment variable {variable}='{value}' is not a whole number.");
    }
}
