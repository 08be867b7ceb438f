namespace EmbeddedRaft;

/// <summary>
/// Thrown when one of the library's own internal invariants does not hold. This is always a bug
/// in EmbeddedRaft (or memory corruption), never the caller's or a peer's fault: the checks are
/// always on, in Release builds too, because continuing past a broken invariant in a consensus or
/// storage core is how data gets silently lost. Nothing a peer sends and no bytes read from disk can
/// cause it: hostile messages and corrupt files get their own exceptions. The component that throws
/// it must not be used further.
/// </summary>
/// <remarks>
/// Every check in the library has one shape, in every assembly:
/// <c>if (broken) { throw new InvariantViolationException("what broke, and where"); }</c> — one
/// condition per check, the message a constant or a cheap interpolation built only on failure.
/// (<c>Debug.Assert(Monitor.IsEntered(...))</c> in methods named <c>...Unsynchronized</c> is not an
/// invariant check but the lock-held convention of dotnet/runtime.)
/// </remarks>
public sealed class InvariantViolationException : Exception
{
    /// <summary>Creates the exception with a description of the invariant that failed.</summary>
    public InvariantViolationException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception with a description of the invariant that failed and its cause.</summary>
    public InvariantViolationException(string message, Exception innerException) : base(message, innerException)
    {
    }
}
