namespace EmbeddedRaft.Mvcc;

/// <summary>
/// The header of every response, as etcd's <c>ResponseHeader</c> (only the revision: cluster,
/// member and term belong to the replicated store).
/// </summary>
public sealed class ResponseHeader
{
    /// <summary>
    /// The store's revision when the request was served: for a read, the current revision (not the
    /// one the read asked for); for a write that changed something, the revision it created. As in
    /// etcd, a transaction nested in another one answers with 0 here.
    /// </summary>
    public long Revision { get; init; }
}
