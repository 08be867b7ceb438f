namespace EmbeddedRaft.Consensus;

/// <summary>A snapshot older than the one the storage already holds was applied or created.</summary>
public sealed class SnapshotOutOfDateException : Exception
{
    /// <summary>Creates the exception.</summary>
    public SnapshotOutOfDateException(ulong snapshotIndex, ulong currentIndex)
        : base($"Snapshot at index {snapshotIndex} is older than the current snapshot at {currentIndex}.")
    {
        SnapshotIndex = snapshotIndex;
        CurrentIndex = currentIndex;
    }

    /// <summary>The index of the refused snapshot.</summary>
    public ulong SnapshotIndex { get; }

    /// <summary>The index of the snapshot already held.</summary>
    public ulong CurrentIndex { get; }
}
