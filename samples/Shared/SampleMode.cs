namespace EmbeddedRaft.Samples;

/// <summary>
/// How a sample runs: the full demo (a minute or so), or the short one CI runs (a few seconds:
/// <c>--short</c> or the environment variable <c>SAMPLE_SHORT=1</c>). <c>--plain</c> prints plain
/// lines instead of the live view (also chosen by itself when output is redirected or on CI).
/// </summary>
internal sealed record SampleMode(bool IsShort, bool PlainOutput)
{
    /// <summary>Reads the arguments and <c>SAMPLE_SHORT</c>; throws <see cref="ArgumentException"/> on an unknown argument.</summary>
    public static SampleMode FromArguments(IReadOnlyList<string> args)
    {
        bool isShort = Environment.GetEnvironmentVariable("SAMPLE_SHORT") == "1";
        bool plain = false;
        foreach (string arg in args)
        {
            switch (arg)
            {
                case "--short":
                    isShort = true;
                    break;
                case "--plain":
                    plain = true;
                    break;
                default:
                    throw new ArgumentException($"Unknown argument '{arg}'. Usage: [--short] [--plain] (environment: SAMPLE_SHORT=1).", nameof(args));
            }
        }

        return new SampleMode(isShort, plain);
    }

    /// <summary>How long the writers run in each phase of the story.</summary>
    public TimeSpan WritePhase => IsShort ? TimeSpan.FromSeconds(1) : TimeSpan.FromSeconds(6);

    /// <summary>Longest the story waits for anything the cluster must do (an election, a catch-up) before it fails that check.</summary>
    public TimeSpan PatienceLimit => IsShort ? TimeSpan.FromSeconds(20) : TimeSpan.FromSeconds(30);
}
