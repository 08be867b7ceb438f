namespace EmbeddedRaft.TestSupport.Linearizability;

/// <summary>
/// One client operation of a history: when it was invoked and, unless it is indeterminate, when
/// it completed and what it returned. Times are ticks of any one clock shared by the whole history
/// (simulated time, or a log line number); only their order matters: an operation precedes another
/// when it completed strictly before the other was invoked, and otherwise the two are concurrent.
/// </summary>
/// <param name="ClientId">Which client ran it (for counterexamples; the checker does not need it).</param>
/// <param name="InvokeTicks">When it was invoked.</param>
/// <param name="CompleteTicks">When it completed; <see langword="null"/> when indeterminate.</param>
/// <param name="Input">What was asked.</param>
/// <param name="Output">What was returned; <see langword="null"/> when indeterminate.</param>
/// <remarks>
/// An indeterminate operation (it timed out, or its member crashed) may have taken effect at any
/// moment after its invocation, or never; it constrains nothing after it.
/// </remarks>
public sealed record Operation<TInput, TOutput>(int ClientId, long InvokeTicks, long? CompleteTicks, TInput Input, TOutput? Output)
    where TInput : notnull
    where TOutput : class
{
    /// <summary>Whether the outcome is unknown: no completion, no output.</summary>
    public bool Indeterminate => CompleteTicks is null;
}

/// <summary>Creates <see cref="Operation{TInput, TOutput}"/> values with their arguments checked.</summary>
public static class Operation
{
    /// <summary>A completed operation.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="completeTicks"/> is before <paramref name="invokeTicks"/>.</exception>
    public static Operation<TInput, TOutput> Completed<TInput, TOutput>(int clientId, long invokeTicks, long completeTicks, TInput input, TOutput output)
        where TInput : notnull
        where TOutput : class
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(output);
        if (completeTicks < invokeTicks)
        {
            throw new ArgumentOutOfRangeException(nameof(completeTicks), completeTicks, $"An operation completes at or after its invocation ({invokeTicks}).");
        }

        return new Operation<TInput, TOutput>(clientId, invokeTicks, completeTicks, input, output);
    }

    /// <summary>An operation whose outcome is unknown: it may take effect at any moment after <paramref name="invokeTicks"/>, or never.</summary>
    public static Operation<TInput, TOutput> IndeterminateAfter<TInput, TOutput>(int clientId, long invokeTicks, TInput input)
        where TInput : notnull
        where TOutput : class
    {
        ArgumentNullException.ThrowIfNull(input);
        return new Operation<TInput, TOutput>(clientId, invokeTicks, null, input, null);
    }
}
