namespace EmbeddedRaft.TestSupport.Linearizability;

/// <summary>What a client asked of one register (<see cref="RegisterModel"/>).</summary>
public enum RegisterOperationKind
{
    /// <summary>Read the value.</summary>
    Read,

    /// <summary>Write <see cref="RegisterInput.Value"/>.</summary>
    Write,

    /// <summary>If the value is <see cref="RegisterInput.Expected"/>, set it to <see cref="RegisterInput.Value"/>.</summary>
    CompareAndSet,
}

/// <summary>An operation on the register named <paramref name="Key"/>.</summary>
/// <param name="Key">Which register (each is independent: the model partitions by it).</param>
/// <param name="Kind">Read, write or compare-and-set.</param>
/// <param name="Value">The value written or set; unused by a read.</param>
/// <param name="Expected">The value a compare-and-set expects; unused otherwise.</param>
public sealed record RegisterInput(string Key, RegisterOperationKind Kind, int Value = 0, int Expected = 0)
{
    /// <summary>A read of <paramref name="key"/>.</summary>
    public static RegisterInput Read(string key) => new(key, RegisterOperationKind.Read);

    /// <summary>A write of <paramref name="value"/> to <paramref name="key"/>.</summary>
    public static RegisterInput Write(string key, int value) => new(key, RegisterOperationKind.Write, value);

    /// <summary>If <paramref name="key"/> holds <paramref name="expected"/>, set it to <paramref name="value"/>.</summary>
    public static RegisterInput CompareAndSet(string key, int expected, int value) => new(key, RegisterOperationKind.CompareAndSet, value, expected);
}

/// <summary>What a register operation returned.</summary>
/// <param name="Succeeded">A write: always true. A compare-and-set: whether it took effect. A read: always true.</param>
/// <param name="Value">A read: the value seen, <see langword="null"/> when the register was never written. Otherwise null.</param>
public sealed record RegisterOutput(bool Succeeded, int? Value = null)
{
    /// <summary>A write, or a compare-and-set that took effect.</summary>
    public static RegisterOutput Ok { get; } = new(true);

    /// <summary>A compare-and-set that did not take effect (the value was not the expected one).</summary>
    public static RegisterOutput Failed { get; } = new(false);

    /// <summary>A read that saw <paramref name="value"/> (null: no value).</summary>
    public static RegisterOutput ReadValue(int? value) => new(true, value);
}
