using System.Diagnostics;

namespace EmbeddedRaft.TestSupport.Linearizability;

/// <summary>
/// Checks a concurrent history against a sequential model: is there an order of the operations
/// that respects real time (an operation that completed before another was invoked comes first)
/// and that the model accepts, output for output? Wing and Gong's search with Lowe's memoization
/// (the algorithm of Knossos' "linear" checker and of porcupine), per key when the model
/// partitions (P-compositionality), with indeterminate operations that may take effect at any
/// moment after their invocation or never.
/// </summary>
/// <remarks>
/// The search walks a list of call and return events in time order. At a call it tries to
/// linearize that operation now (the model accepts it from the current state and the pair
/// (set of linearized operations, new state) was not explored before), lifting it out of the
/// list; at a return whose operation is still in the list, every order so far is a dead end and it
/// backtracks. Indeterminate operations return after everything, so they never force a backtrack,
/// and the search succeeds as soon as only they remain: linearizing them last, after every
/// observation, is the same as them never taking effect.
/// Thread-safety: stateless; concurrent checks of different histories are safe.
/// </remarks>
public static class LinearizabilityChecker
{
    /// <summary>Checks <paramref name="history"/> against <paramref name="model"/> within the bounds of <paramref name="options"/>.</summary>
    /// <exception cref="ArgumentException">The model gives a partition key for some inputs and not for others.</exception>
    public static LinearizabilityResult<TInput, TOutput> Check<TState, TInput, TOutput>(
        ILinearizabilityModel<TState, TInput, TOutput> model,
        IReadOnlyList<Operation<TInput, TOutput>> history,
        LinearizabilityCheckerOptions? options = null)
        where TInput : notnull
        where TOutput : class
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(history);
        options ??= LinearizabilityCheckerOptions.Default;

        var partitions = Partition(model, history);
        var budget = new SearchBudget(options.MaxSteps, options.Timeout);
        var witness = new List<IReadOnlyList<Operation<TInput, TOutput>>>();
        LinearizabilityResult<TInput, TOutput>? undecided = null;
        foreach ((string? key, List<int> indices) in partitions)
        {
            var search = new LinearizabilitySearch<TState, TInput, TOutput>(model, history, indices, key, budget);
            LinearizabilityResult<TInput, TOutput> result = search.Run();
            switch (result.Verdict)
            {
                case LinearizabilityVerdict.NotLinearizable:
                    return result;
                case LinearizabilityVerdict.Unknown:
                    undecided ??= result;
                    break;
                default:
                    witness.Add(result.Linearization[0]);
                    break;
            }
        }

        if (undecided is not null)
        {
            return undecided;
        }

        return new LinearizabilityResult<TInput, TOutput>(
            LinearizabilityVerdict.Linearizable,
            budget.Steps,
            partitionKey: null,
            witness,
            [],
            unplaced: null,
            $"Linearizable: {history.Count} operations in {partitions.Count} partition(s), {budget.Steps} steps.");
    }

    private static List<(string? Key, List<int> Indices)> Partition<TState, TInput, TOutput>(
        ILinearizabilityModel<TState, TInput, TOutput> model,
        IReadOnlyList<Operation<TInput, TOutput>> history)
        where TInput : notnull
        where TOutput : class
    {
        var byKey = new SortedDictionary<string, List<int>>(StringComparer.Ordinal);
        var unkeyed = new List<int>();
        for (int i = 0; i < history.Count; i++)
        {
            Operation<TInput, TOutput> op = history[i] ?? throw new ArgumentException($"Operation {i} of the history is null.", nameof(history));
            string? key = model.PartitionKey(op.Input);
            if (key is null)
            {
                unkeyed.Add(i);
            }
            else
            {
                if (!byKey.TryGetValue(key, out List<int>? list))
                {
                    byKey[key] = list = [];
                }

                list.Add(i);
            }
        }

        if (unkeyed.Count > 0 && byKey.Count > 0)
        {
            throw new ArgumentException("The model gave a partition key for some operations and none for others; it must do one or the other.", nameof(model));
        }

        if (byKey.Count == 0)
        {
            return [(null, unkeyed)];
        }

        return byKey.Select(pair => ((string?)pair.Key, pair.Value)).ToList();
    }
}

/// <summary>Steps and time left for one check, shared by its partitions.</summary>
internal sealed class SearchBudget(long maxSteps, TimeSpan timeout)
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    public long Steps { get; private set; }

    /// <summary>Counts one step; false when a bound is reached (the clock is read every 4096 steps).</summary>
    public bool TryStep()
    {
        Steps++;
        if (Steps > maxSteps)
        {
            return false;
        }

        return (Steps & 4095) != 0 || timeout == Timeout.InfiniteTimeSpan || _clock.Elapsed < timeout;
    }

    public string Describe() => $"{Steps} steps (limit {maxSteps}), {_clock.Elapsed.TotalSeconds:0.00} s (limit {(timeout == Timeout.InfiniteTimeSpan ? "none" : timeout.TotalSeconds.ToString("0", System.Globalization.CultureInfo.InvariantCulture) + " s")})";
}
