namespace EmbeddedRaft.Mvcc;

/// <summary>
/// The header of every response, as etcd's <c>ResponseHeader</c>. A standalone
/// <see cref="MvccStore"/> fills only <see cref="Revision"/>; a
/// <see cref="Replication.ReplicatedStore"/> also fills the cluster, member and Raft term of the
/// member that answered.
/// </summary>
public sealed class ResponseHeader
{
    /// <summary>
    /// The store's revision when the request was served: for a read, the current revision (not the
    /// one the read asked for); for a write that changed something, the revision it created. As in
    /// etcd, a transaction nested in another one answers with 0 here.
    /// </summary>
    public long Revision { get; init; }

    /// <summary>The id of the cluster of the member that answered; 0 from a standalone store.</summary>
    public ulong ClusterId { get; init; }

    /// <summary>The id of the member that answered; 0 from a standalone store.</summary>
    public ulong MemberId { get; init; }

    /// <summary>The Raft term the answering member knew when it answered; 0 from a standalone store.</summary>
    public ulong RaftTerm { get; init; }
}
