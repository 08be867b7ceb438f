using System.Numerics;

namespace EmbeddedRaft;

/// <summary>
/// The range checks every options record runs in its <c>init</c> accessors, so each option's
/// rule is one line and every library words the same mistake the same way: an
/// <see cref="ArgumentOutOfRangeException"/> whose <c>ParamName</c> is the option's property name
/// and whose message names the option and the allowed range.
/// </summary>
/// <remarks>
/// Compiled into each library from this one file (Directory.Build.props links it), so it stays
/// internal everywhere and no library exposes it. Rules that are not a plain range (a power of two,
/// a multiple of the sector size, cross-property rules) stay with their option.
/// </remarks>
internal static class OptionChecks
{
    /// <summary>Returns <paramref name="value"/> if it lies in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    /// <exception cref="ArgumentOutOfRangeException">It does not.</exception>
    public static T InRange<T>(T value, T min, T max, string optionName)
        where T : IComparisonOperators<T, T, bool>
    {
        if (value < min || value > max)
        {
            throw new ArgumentOutOfRangeException(optionName, value, $"{optionName} must be from {min} to {max}.");
        }

        return value;
    }

    /// <summary>Returns <paramref name="value"/> if it is at least <paramref name="min"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">It is smaller.</exception>
    public static T AtLeast<T>(T value, T min, string optionName)
        where T : IComparisonOperators<T, T, bool>
    {
        if (value < min)
        {
            throw new ArgumentOutOfRangeException(optionName, value, $"{optionName} must be at least {min}.");
        }

        return value;
    }

    /// <summary>Returns <paramref name="value"/> if it is longer than zero (timeouts, intervals).</summary>
    /// <exception cref="ArgumentOutOfRangeException">It is zero or negative.</exception>
    public static TimeSpan Positive(TimeSpan value, string optionName) =>
        value > TimeSpan.Zero ? value : throw new ArgumentOutOfRangeException(optionName, value, $"{optionName} must be more than zero.");

    /// <summary>Returns <paramref name="value"/> if it is not null.</summary>
    /// <exception cref="ArgumentNullException">It is null (ParamName is the option's name).</exception>
    public static T NotNull<T>(T? value, string optionName)
        where T : class
    {
        ArgumentNullException.ThrowIfNull(value, optionName);
        return value;
    }

    /// <summary>Returns <paramref name="value"/> if it is a defined member of its enum.</summary>
    /// <exception cref="ArgumentOutOfRangeException">It is not.</exception>
    public static T Defined<T>(T value, string optionName)
        where T : struct, Enum
    {
        if (!Enum.IsDefined(value))
        {
            throw new ArgumentOutOfRangeException(optionName, value, $"{optionName} must be one of {string.Join(", ", Enum.GetNames<T>())}.");
        }

        return value;
    }
}
