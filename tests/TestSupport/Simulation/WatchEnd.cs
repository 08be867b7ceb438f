namespace EmbeddedRaft.TestSupport.Simulation;

/// <summary>How an observed watch ended.</summary>
public enum WatchEnd
{
    /// <summary>Still open when the run ended (or the client stopped reading without cancelling).</summary>
    Open,

    /// <summary>The client cancelled it (disposed the stream).</summary>
    Cancelled,

    /// <summary>
    /// The store ended it with <c>RevisionCompactedException</c>: the history it needed next was
    /// compacted. <see cref="WatchObservation.CompactRevision"/> holds the exception's compact revision.
    /// </summary>
    Compacted,

    /// <summary>Its member stopped, crashed or faulted (ObjectDisposedException, StorageFaultedException).</summary>
    MemberStopped,
}
