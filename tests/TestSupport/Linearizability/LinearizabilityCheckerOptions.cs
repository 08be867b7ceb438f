namespace EmbeddedRaft.TestSupport.Linearizability;

/// <summary>
/// Bounds of one <see cref="LinearizabilityChecker.Check"/>. The search is exponential in the
/// worst case; when it reaches either bound it stops and answers
/// <see cref="LinearizabilityVerdict.Unknown"/> instead of hanging. Tests rely on
/// <see cref="MaxSteps"/> (deterministic); <see cref="Timeout"/> is a backstop against hangs.
/// </summary>
/// <remarks>Immutable; thread-safe to share. Vary with <c>LinearizabilityCheckerOptions.Default with { MaxSteps = ... }</c>.</remarks>
public sealed record LinearizabilityCheckerOptions
{
    /// <summary>The default <see cref="MaxSteps"/>: 50 million (the slowest Jepsen etcd history needs far fewer).</summary>
    public const long DefaultMaxSteps = 50_000_000;

    /// <summary>Creates options with every default.</summary>
    public LinearizabilityCheckerOptions()
    {
    }

    /// <summary>Every default: <see cref="DefaultMaxSteps"/> steps, a 5 minute timeout.</summary>
    public static LinearizabilityCheckerOptions Default { get; } = new();

    /// <summary>
    /// Most search steps (one per list entry visited, over all partitions) before the answer is
    /// <see cref="LinearizabilityVerdict.Unknown"/>. At least 1. Default <see cref="DefaultMaxSteps"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Less than 1 (ParamName "MaxSteps").</exception>
    public long MaxSteps
    {
        get;
        init
        {
            if (value < 1)
            {
                throw new ArgumentOutOfRangeException(nameof(MaxSteps), value, $"{nameof(MaxSteps)} must be at least 1.");
            }

            field = value;
        }
    } = DefaultMaxSteps;

    /// <summary>
    /// Longest wall-clock time for one check before the answer is <see cref="LinearizabilityVerdict.Unknown"/>.
    /// Positive, or <see cref="System.Threading.Timeout.InfiniteTimeSpan"/>. Default 5 minutes.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Zero or negative other than infinite (ParamName "Timeout").</exception>
    public TimeSpan Timeout
    {
        get;
        init
        {
            if (value <= TimeSpan.Zero && value != System.Threading.Timeout.InfiniteTimeSpan)
            {
                throw new ArgumentOutOfRangeException(nameof(Timeout), value, $"{nameof(Timeout)} must be positive or infinite.");
            }

            field = value;
        }
    } = TimeSpan.FromMinutes(5);
}
