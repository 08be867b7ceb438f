using System.Globalization;
using System.Numerics;

namespace EmbeddedRaft.Benchmarks;

/// <summary>
/// A command line a console command cannot run (an unknown option, a missing or malformed value).
/// <see cref="Program"/> prints its message with the command's name and exits with code 2, before
/// anything was started: thrown only while the options are read, never by a run.
/// </summary>
internal sealed class CommandLineException(string message) : Exception(message);

/// <summary>
/// What the console commands (<c>cluster-load</c>, <c>store-load</c>, the probes) share when they
/// read their options: every failure names the option and what it takes, as a
/// <see cref="CommandLineException"/>, so a typo stops the command at once instead of running a
/// benchmark with a default the caller did not ask for.
/// </summary>
internal static class CommandLine
{
    /// <summary>True when <paramref name="args"/> asks for the command's usage (<c>--help</c> or <c>-h</c>).</summary>
    public static bool WantsHelp(IEnumerable<string> args) => args.Any(static a => a is "--help" or "-h");

    /// <summary>The value of <paramref name="option"/> as a number (invariant culture; a whole one for an integer type).</summary>
    public static T Number<T>(string option, string value)
        where T : INumber<T>
    {
        bool integer = T.IsZero(T.One / (T.One + T.One));
        return T.TryParse(value, integer ? NumberStyles.Integer : NumberStyles.Float, CultureInfo.InvariantCulture, out var parsed)
            ? parsed
            : throw new CommandLineException($"{option} takes {(integer ? "a whole number" : "a number")}, not '{value}'.");
    }

    /// <summary>The comma-separated values of <paramref name="option"/> as numbers.</summary>
    public static T[] Numbers<T>(string option, string value)
        where T : INumber<T> => [.. value.Split(',').Select(v => Number<T>(option, v))];

    /// <summary>
    /// The number after <paramref name="option"/> in <paramref name="args"/>, or
    /// <paramref name="fallback"/> when it is absent (for the probes that look their options up by
    /// name; <see cref="RefuseUnknown"/> checks the rest of the line).
    /// </summary>
    public static int Option(string[] args, string option, int fallback)
    {
        int at = Array.IndexOf(args, option);
        if (at < 0)
        {
            return fallback;
        }

        return at + 1 < args.Length ? Number<int>(option, args[at + 1]) : throw new CommandLineException($"{option} needs a value.");
    }

    /// <summary>
    /// Refuses any word of <paramref name="args"/> after the first <paramref name="positional"/>
    /// ones that is neither one of <paramref name="valueOptions"/> (followed by its value) nor one
    /// of <paramref name="flags"/>.
    /// </summary>
    public static void RefuseUnknown(string[] args, IReadOnlyCollection<string> valueOptions, IReadOnlyCollection<string> flags, int positional = 0)
    {
        for (int i = positional; i < args.Length; i++)
        {
            if (flags.Contains(args[i]))
            {
                continue;
            }

            if (!valueOptions.Contains(args[i]))
            {
                throw new CommandLineException($"Unknown option '{args[i]}'.");
            }

            if (++i >= args.Length)
            {
                throw new CommandLineException($"{args[i - 1]} needs a value.");
            }
        }
    }
}
