namespace EmbeddedRaft.TestSupport.Linearizability;

/// <summary>The errors an etcd request may answer that the model predicts (each means nothing was changed).</summary>
public enum EtcdKvError
{
    /// <summary>No error.</summary>
    None,

    /// <summary>A read or compaction at a compacted revision (etcd "mvcc: required revision has been compacted").</summary>
    Compacted,

    /// <summary>A read or compaction above the current revision (etcd "mvcc: required revision is a future revision").</summary>
    FutureRevision,

    /// <summary>A put with, a revoke or a keep-alive of a lease that does not exist (etcd "lease not found").</summary>
    LeaseNotFound,

    /// <summary>A grant of an id in use (etcd "lease already exists").</summary>
    LeaseExists,
}
