namespace EmbeddedRaft.Consensus;

/// <summary>
/// The storage is producing a snapshot but it is not ready yet. The leader keeps the follower
/// where it is and asks again later; this is not an error.
/// </summary>
public sealed class SnapshotTemporarilyUnavailableException : Exception
{
    /// <summary>Creates the exception.</summary>
    public SnapshotTemporarilyUnavailableException()
        : base("Snapshot is temporarily unavailable.")
    {
    }

    /// <summary>Creates the exception with a custom message.</summary>
    public SnapshotTemporarilyUnavailableException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a custom message and cause.</summary>
    public SnapshotTemporarilyUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
