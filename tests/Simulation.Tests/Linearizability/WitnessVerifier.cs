using EmbeddedRaft.TestSupport.Linearizability;

namespace EmbeddedRaft.Simulation.Tests.Linearizability;

/// <summary>
/// Checks the checker's evidence without trusting its search: a witness of linearizability must
/// hold every completed operation exactly once, respect real time and replay through the model;
/// a counterexample's prefix must itself replay through the model and respect real time.
/// </summary>
internal static class WitnessVerifier
{
    public static void VerifyWitness<TState, TInput, TOutput>(
        ILinearizabilityModel<TState, TInput, TOutput> model,
        IReadOnlyList<Operation<TInput, TOutput>> history,
        LinearizabilityResult<TInput, TOutput> result)
        where TInput : notnull
        where TOutput : class
    {
        Assert.That(result.Verdict, Is.EqualTo(LinearizabilityVerdict.Linearizable), result.Explanation);
        var placed = new HashSet<Operation<TInput, TOutput>>(ReferenceEqualityComparer.Instance);
        foreach (IReadOnlyList<Operation<TInput, TOutput>> order in result.Linearization)
        {
            Replay(model, order, "witness");
            foreach (Operation<TInput, TOutput> op in order)
            {
                Assert.That(placed.Add(op), Is.True, $"The witness places {op} twice.");
            }
        }

        foreach (Operation<TInput, TOutput> op in history.Where(op => !op.Indeterminate))
        {
            Assert.That(placed, Does.Contain(op), $"The witness leaves out the completed operation {op}.");
        }

        Assert.That(placed.All(op => history.Contains(op)), Is.True, "The witness holds an operation that is not in the history.");
    }

    public static void VerifyCounterexample<TState, TInput, TOutput>(
        ILinearizabilityModel<TState, TInput, TOutput> model,
        LinearizabilityResult<TInput, TOutput> result)
        where TInput : notnull
        where TOutput : class
    {
        Assert.That(result.Verdict, Is.EqualTo(LinearizabilityVerdict.NotLinearizable), result.Explanation);
        Assert.That(result.Unplaced, Is.Not.Null, "A counterexample names the operation it could not place.");
        Assert.That(result.Unplaced!.Indeterminate, Is.False, "Only a completed operation can fail to be placed.");
        Assert.That(result.LongestPrefix, Does.Not.Contain(result.Unplaced), "The unplaced operation is not in the prefix.");
        Replay(model, result.LongestPrefix, "counterexample prefix");
        Assert.That(result.Explanation, Does.Contain("Could not place"));
    }

    private static void Replay<TState, TInput, TOutput>(
        ILinearizabilityModel<TState, TInput, TOutput> model, IReadOnlyList<Operation<TInput, TOutput>> order, string what)
        where TInput : notnull
        where TOutput : class
    {
        TState state = model.Initial;
        for (int i = 0; i < order.Count; i++)
        {
            Operation<TInput, TOutput> op = order[i];
            Assert.That(model.Step(state, op.Input, op.Output, out state), Is.True,
                $"The {what} is not a sequential execution: step {i}, {model.Describe(op.Input, op.Output)}, is not allowed.");
            for (int j = i + 1; j < order.Count; j++)
            {
                Assert.That(order[j].CompleteTicks < op.InvokeTicks, Is.False,
                    $"The {what} breaks real time: {order[j]} completed before {op} was invoked but is placed after it.");
            }
        }
    }
}
