namespace EmbeddedRaft.Mvcc;

/// <summary>The revision asked for is above the store's current revision (etcd's ErrFutureRev).</summary>
public sealed class FutureRevisionException : MvccException
{
    /// <summary>Creates the exception for a request of <paramref name="requestedRevision"/> when the store is at <paramref name="currentRevision"/>.</summary>
    public FutureRevisionException(long requestedRevision, long currentRevision)
        : base(MvccError.FutureRevision, $"{MessageOf(MvccError.FutureRevision)} (revision {requestedRevision} requested, current revision {currentRevision})")
    {
        RequestedRevision = requestedRevision;
        CurrentRevision = currentRevision;
    }

    /// <summary>The revision asked for.</summary>
    public long RequestedRevision { get; }

    /// <summary>The store's revision when the request was refused.</summary>
    public long CurrentRevision { get; }
}
