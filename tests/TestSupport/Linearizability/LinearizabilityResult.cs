namespace EmbeddedRaft.TestSupport.Linearizability;

/// <summary>
/// The checker's answer for one history. When linearizable, <see cref="Linearization"/> is a
/// witness order (per partition, definite operations and the indeterminate ones placed before the
/// last definite one); when not, <see cref="LongestPrefix"/>, <see cref="Unplaced"/> and
/// <see cref="Explanation"/> say where every order broke down.
/// </summary>
public sealed class LinearizabilityResult<TInput, TOutput>
    where TInput : notnull
    where TOutput : class
{
    internal LinearizabilityResult(
        LinearizabilityVerdict verdict,
        long steps,
        string? partitionKey,
        IReadOnlyList<IReadOnlyList<Operation<TInput, TOutput>>> linearization,
        IReadOnlyList<Operation<TInput, TOutput>> longestPrefix,
        Operation<TInput, TOutput>? unplaced,
        string explanation)
    {
        Verdict = verdict;
        Steps = steps;
        PartitionKey = partitionKey;
        Linearization = linearization;
        LongestPrefix = longestPrefix;
        Unplaced = unplaced;
        Explanation = explanation;
    }

    /// <summary>Linearizable, not, or unknown (a bound was hit).</summary>
    public LinearizabilityVerdict Verdict { get; }

    /// <summary>Search steps taken over all partitions (a machine-independent measure of the work).</summary>
    public long Steps { get; }

    /// <summary>The partition that failed or was not decided; <see langword="null"/> when linearizable or when the model does not partition.</summary>
    public string? PartitionKey { get; }

    /// <summary>
    /// When linearizable: one witness order per partition, each a sequence the model accepts that
    /// respects real time. Indeterminate operations that did not need to take effect are left out.
    /// Empty otherwise.
    /// </summary>
    public IReadOnlyList<IReadOnlyList<Operation<TInput, TOutput>>> Linearization { get; }

    /// <summary>When not linearizable: the longest sequence of operations of the failing partition that could be linearized.</summary>
    public IReadOnlyList<Operation<TInput, TOutput>> LongestPrefix { get; }

    /// <summary>When not linearizable: the completed operation that no order could place after <see cref="LongestPrefix"/>.</summary>
    public Operation<TInput, TOutput>? Unplaced { get; }

    /// <summary>A human-readable account: the verdict, and for a failure the prefix, the state after it and the operation that could not be placed.</summary>
    public string Explanation { get; }

    /// <inheritdoc/>
    public override string ToString() => Explanation;
}
