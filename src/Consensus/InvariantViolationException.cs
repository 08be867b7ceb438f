namespace EmbeddedRaft.Consensus;

/// <summary>
/// An internal invariant of the Raft core was broken: a bug in this library or in a storage
/// implementation (for example, storage returning entries that contradict its own indexes).
/// Always on, never compiled out. Nothing a peer sends can cause it; malformed or hostile
/// messages are refused with <see cref="MessageRejectedException"/> instead. The node that
/// throws it must not be used further.
/// </summary>
public sealed class InvariantViolationException : Exception
{
    /// <summary>Creates the exception.</summary>
    public InvariantViolationException()
    {
    }

    /// <summary>Creates the exception with a statement of the broken invariant.</summary>
    public InvariantViolationException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a statement of the broken invariant and a cause.</summary>
    public InvariantViolationException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
