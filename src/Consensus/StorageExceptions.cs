namespace EmbeddedRaft.Consensus;

/// <summary>
/// The requested log index is at or below the storage's compaction point: the entries have
/// been folded into a snapshot. The leader answers by sending a snapshot instead.
/// </summary>
public sealed class CompactedException : Exception
{
    /// <summary>Creates the exception for a request at <paramref name="requestedIndex"/>.</summary>
    public CompactedException(ulong requestedIndex, ulong firstIndex)
        : base($"Log index {requestedIndex} is compacted; the first available index is {firstIndex}.")
    {
        RequestedIndex = requestedIndex;
        FirstIndex = firstIndex;
    }

    /// <summary>Creates the exception.</summary>
    public CompactedException()
        : base("Requested index is compacted.")
    {
    }

    /// <summary>Creates the exception with a custom message.</summary>
    public CompactedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a custom message and cause.</summary>
    public CompactedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The index that was asked for.</summary>
    public ulong RequestedIndex { get; }

    /// <summary>The first index the storage still has.</summary>
    public ulong FirstIndex { get; }
}

/// <summary>The requested log index is beyond the storage's last index.</summary>
public sealed class EntriesUnavailableException : Exception
{
    /// <summary>Creates the exception for a request at <paramref name="requestedIndex"/>.</summary>
    public EntriesUnavailableException(ulong requestedIndex, ulong lastIndex)
        : base($"Log index {requestedIndex} is beyond the last index {lastIndex}.")
    {
        RequestedIndex = requestedIndex;
        LastIndex = lastIndex;
    }

    /// <summary>Creates the exception.</summary>
    public EntriesUnavailableException()
        : base("Requested index is unavailable.")
    {
    }

    /// <summary>Creates the exception with a custom message.</summary>
    public EntriesUnavailableException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a custom message and cause.</summary>
    public EntriesUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The index that was asked for.</summary>
    public ulong RequestedIndex { get; }

    /// <summary>The last index the storage has.</summary>
    public ulong LastIndex { get; }
}

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

    /// <summary>Creates the exception.</summary>
    public SnapshotOutOfDateException()
        : base("Snapshot is out of date.")
    {
    }

    /// <summary>Creates the exception with a custom message.</summary>
    public SnapshotOutOfDateException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a custom message and cause.</summary>
    public SnapshotOutOfDateException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The index of the refused snapshot.</summary>
    public ulong SnapshotIndex { get; }

    /// <summary>The index of the snapshot already held.</summary>
    public ulong CurrentIndex { get; }
}
