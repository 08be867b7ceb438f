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
    /// </summary>
    /// <exception cref="InvalidOperationException">A variable is set to something that is not a whole number.</exception>
    public static IReadOnlyList<int> Choose(string replayVariable, string soakVariable, int first, int defaultCount)
    {
        if (Read(replayVariable) is int replay)
        {
            return [replay];
        }

        int count = Read(soakVariable) ?? defaultCount;
        return Enumerable.Range(first, count).ToList();
    }

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
