namespace EmbeddedRaft.Consensus;

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

    /// <summary>The index that was asked for.</summary>
    public ulong RequestedIndex { get; }

    /// <summary>The last index the storage has.</summary>
    public ulong LastIndex { get; }
}
