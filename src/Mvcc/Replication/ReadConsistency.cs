namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>How current a read of a <see cref="ReplicatedStore"/> must be (etcd's <c>serializable</c> flag).</summary>
public enum ReadConsistency
{
    /// <summary>
    /// The read sees every write acknowledged anywhere in the cluster before it started: the member
    /// first confirms a read point with the leader (Raft ReadIndex, one round trip shared by
    /// concurrent reads) and waits until it has applied up to it. Works on any member; fails with
    /// <see cref="Consensus.Host.NoLeaderException"/> when no leader is known.
    /// </summary>
    Linearizable = 0,

    /// <summary>The read is served from this member's applied state at once: it may miss recent writes (stale), never sees uncommitted ones, and needs no leader.</summary>
    Serializable = 1,
}
