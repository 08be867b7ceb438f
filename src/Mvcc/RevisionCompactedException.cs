namespace EmbeddedRaft.Mvcc;

/// <summary>
/// The revision asked for has been compacted away (etcd's ErrCompacted): a read below the compact
/// revision, or a compaction at or below it. <see cref="CompactRevision"/> is the store's compact revision.
/// </summary>
public sealed class RevisionCompactedException : MvccException
{
    /// <summary>Creates the exception for a request of <paramref name="requestedRevision"/> under <paramref name="compactRevision"/>.</summary>
    public RevisionCompactedException(long requestedRevision, long compactRevision)
        : base(MvccError.Compacted, $"{MessageOf(MvccError.Compacted)} (revision {requestedRevision} requested, compacted at {compactRevision})")
    {
        RequestedRevision = requestedRevision;
        CompactRevision = compactRevision;
    }

    /// <summary>The revision asked for.</summary>
    public long RequestedRevision { get; }

    /// <summary>The store's compact revision when the request was refused.</summary>
    public long CompactRevision { get; }
}
