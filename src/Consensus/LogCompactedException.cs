namespace EmbeddedRaft.Consensus;

/// <summary>
/// The requested log index is at or below the storage's compaction point: the entries have
/// been folded into a snapshot. The leader answers by sending a snapshot instead.
/// </summary>
public sealed class LogCompactedException : Exception
{
    /// <summary>Creates the exception for a request at <paramref name="requestedIndex"/>.</summary>
    public LogCompactedException(ulong requestedIndex, ulong firstIndex)
        : base($"Log index {requestedIndex} is compacted; the first available index is {firstIndex}.")
    {
        RequestedIndex = requestedIndex;
        FirstIndex = firstIndex;
    }

    /// <summary>The index that was asked for.</summary>
    public ulong RequestedIndex { get; }

    /// <summary>The first index the storage still has.</summary>
    public ulong FirstIndex { get; }
}
