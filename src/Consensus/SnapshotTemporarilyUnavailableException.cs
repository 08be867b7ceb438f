namespace EmbeddedRaft.Consensus;

/// <summary>
/// The storage is producing a snapshot but it is not ready yet. The leader keeps the follower
/// where it is and asks again later; this is not an error.
/// </summary>
public sealed class SnapshotTemporarilyUnavailableException : Exception
{
    /// <summary>Creates the exception; an <see cref="IRaftStorage.Snapshot"/> implementation throws it while its snapshot is being produced.</summary>
    public SnapshotTemporarilyUnavailableException()
        : base("Snapshot is temporarily unavailable.")
    {
    }
}
