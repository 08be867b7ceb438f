using System.Globalization;

namespace EmbeddedRaft.TestSupport.Linearizability;

/// <summary>
/// Independent registers, one per key, each starting with no value: read, write, and
/// compare-and-set (which fails, taking no effect, when the value differs, and always fails on a
/// register never written). The model of the Jepsen etcd histories; partitions by key. The state
/// is one register's value (<see langword="null"/>: never written).
/// </summary>
/// <remarks>Stateless and thread-safe.</remarks>
public sealed class RegisterModel : ILinearizabilityModel<int?, RegisterInput, RegisterOutput>
{
    /// <summary>The one instance.</summary>
    public static RegisterModel Instance { get; } = new();

    private RegisterModel()
    {
    }

    /// <inheritdoc/>
    public int? Initial => null;

    /// <inheritdoc/>
    public IEqualityComparer<int?> StateComparer => EqualityComparer<int?>.Default;

    /// <inheritdoc/>
    public bool Step(int? state, RegisterInput input, RegisterOutput? output, out int? next)
    {
        ArgumentNullException.ThrowIfNull(input);
        switch (input.Kind)
        {
            case RegisterOperationKind.Read:
                next = state;
                return output is null || (output.Succeeded && output.Value == state);
            case RegisterOperationKind.Write:
                next = input.Value;
                return output is null || output.Succeeded;
            case RegisterOperationKind.CompareAndSet:
                bool matches = state == input.Expected;
                next = matches ? input.Value : state;
                return output is null || output.Succeeded == matches;
            default:
                throw new ArgumentOutOfRangeException(nameof(input), input.Kind, "Unknown register operation.");
        }
    }

    /// <inheritdoc/>
    public string? PartitionKey(RegisterInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return input.Key;
    }

    /// <inheritdoc/>
    public string Describe(RegisterInput input, RegisterOutput? output)
    {
        ArgumentNullException.ThrowIfNull(input);
        string result = output is null ? "? (indeterminate)"
            : input.Kind == RegisterOperationKind.Read ? DescribeState(output.Value)
            : output.Succeeded ? "ok" : "failed";
        return input.Kind switch
        {
            RegisterOperationKind.Read => $"{input.Key}: read -> {result}",
            RegisterOperationKind.Write => string.Create(CultureInfo.InvariantCulture, $"{input.Key}: write {input.Value} -> {result}"),
            _ => string.Create(CultureInfo.InvariantCulture, $"{input.Key}: cas {input.Expected}->{input.Value} -> {result}"),
        };
    }

    /// <inheritdoc/>
    public string DescribeState(int? state) => state?.ToString(CultureInfo.InvariantCulture) ?? "nil";
}
