namespace EmbeddedRaft.TestSupport.Linearizability;

/// <summary>
/// The sequential specification a history is checked against: a deterministic state machine
/// whose <see cref="Step"/> says whether an operation with a given input may return a given
/// output from a given state, and what state it leaves.
/// </summary>
/// <typeparam name="TState">
/// The model state. Treated as immutable: <see cref="Step"/> must return a new value and never
/// change the one it was given, because the checker keeps old states to backtrack to and caches
/// (linearized set, state) pairs by <see cref="StateComparer"/>.
/// </typeparam>
/// <typeparam name="TInput">What a client asked for.</typeparam>
/// <typeparam name="TOutput">What it was told; <see langword="null"/> when unknown (indeterminate).</typeparam>
/// <remarks>Implementations must be pure and thread-safe: the checker may call them from any thread.</remarks>
public interface ILinearizabilityModel<TState, TInput, TOutput>
    where TInput : notnull
    where TOutput : class
{
    /// <summary>The state before any operation.</summary>
    TState Initial { get; }

    /// <summary>Equality and hashing of states, for the checker's cache of visited (linearized set, state) pairs.</summary>
    IEqualityComparer<TState> StateComparer { get; }

    /// <summary>
    /// Whether <paramref name="input"/> applied to <paramref name="state"/> may return
    /// <paramref name="output"/>, and the state it leaves in <paramref name="next"/>. An unknown
    /// <paramref name="output"/> (<see langword="null"/>, an indeterminate operation) is always
    /// allowed and leaves the state the operation would have left had it taken effect.
    /// </summary>
    bool Step(TState state, TInput input, TOutput? output, out TState next);

    /// <summary>
    /// The independent part of the state <paramref name="input"/> touches (P-compositionality:
    /// a history is linearizable if and only if each key's sub-history is), or
    /// <see langword="null"/> when the model does not partition: then the whole history is
    /// checked as one. A model returns either a key for every input or null for every input.
    /// </summary>
    string? PartitionKey(TInput input);

    /// <summary>A one-line description of an operation for counterexamples ("write 3 -> ok").</summary>
    string Describe(TInput input, TOutput? output);

    /// <summary>A one-line description of a state for counterexamples.</summary>
    string DescribeState(TState state);
}
