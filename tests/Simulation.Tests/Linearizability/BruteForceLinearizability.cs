using EmbeddedRaft.TestSupport.Linearizability;

namespace EmbeddedRaft.Simulation.Tests.Linearizability;

/// <summary>
/// The definition of linearizability, searched naively: try every order of the operations that
/// respects real time, where indeterminate ones may also be left out. Exponential, so only for
/// histories of a handful of operations; the reference the checker is compared with.
/// </summary>
internal static class BruteForceLinearizability
{
    public static bool IsLinearizable<TState, TInput, TOutput>(
        ILinearizabilityModel<TState, TInput, TOutput> model, IReadOnlyList<Operation<TInput, TOutput>> history)
        where TInput : notnull
        where TOutput : class
    {
        var groups = history.GroupBy(op => model.PartitionKey(op.Input) ?? "");
        return groups.All(group => Search(model, group.ToList(), model.Initial));
    }

    private static bool Search<TState, TInput, TOutput>(
        ILinearizabilityModel<TState, TInput, TOutput> model, List<Operation<TInput, TOutput>> remaining, TState state)
        where TInput : notnull
        where TOutput : class
    {
        if (remaining.All(op => op.Indeterminate))
        {
            return true; // the rest never took effect
        }

        foreach (Operation<TInput, TOutput> op in remaining)
        {
            // Real time: nothing still unplaced completed before this one was invoked.
            bool mayGoNext = !remaining.Any(other => other.CompleteTicks < op.InvokeTicks);
            if (mayGoNext && model.Step(state, op.Input, op.Output, out TState next)
                && Search(model, remaining.Where(other => !ReferenceEquals(other, op)).ToList(), next))
            {
                return true;
            }
        }

        return false;
    }
}
