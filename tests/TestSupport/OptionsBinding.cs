using Microsoft.Extensions.Configuration;

namespace EmbeddedRaft.TestSupport;

/// <summary>
/// Binds an options type from configuration the way a hosted service does
/// (<c>configuration.GetSection("Raft").Get&lt;RaftOptions&gt;()</c>), so tests can prove every
/// options type of the library binds, and that a bad value fails naming the option.
/// </summary>
public static class OptionsBinding
{
    /// <summary>Binds <typeparamref name="T"/> from the key/value pairs of one configuration section.</summary>
    public static T Bind<T>(IReadOnlyDictionary<string, string?> values)
        where T : class
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(values.Select(pair => new KeyValuePair<string, string?>("Section:" + pair.Key, pair.Value)))
            .Build();
        return configuration.GetSection("Section").Get<T>() ?? throw new InvalidOperationException("The section bound to nothing.");
    }

    /// <summary>The innermost exception of <paramref name="exception"/> (the binder wraps what a setter throws).</summary>
    public static Exception Innermost(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        while (exception.InnerException is not null)
        {
            exception = exception.InnerException;
        }

        return exception;
    }
}
