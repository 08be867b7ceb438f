namespace EmbeddedRaft.Mvcc;

/// <summary>
/// The etcd errors the store reports, one to one with etcd's <c>rpctypes.ErrGRPC*</c>; see
/// <see cref="MvccException.EtcdMessage"/> and <see cref="MvccException.GrpcStatusCode"/> for what etcd sends for each.
/// </summary>
public enum MvccError
{
    /// <summary>A request's key is empty: "etcdserver: key is not provided" (InvalidArgument).</summary>
    EmptyKey,

    /// <summary>A put with IgnoreValue or IgnoreLease on a key that does not exist: "etcdserver: key not found" (InvalidArgument).</summary>
    KeyNotFound,

    /// <summary>A put with IgnoreValue carries a value: "etcdserver: value is provided" (InvalidArgument).</summary>
    ValueProvided,

    /// <summary>A put with IgnoreLease carries a lease: "etcdserver: lease is provided" (InvalidArgument).</summary>
    LeaseProvided,

    /// <summary>A transaction has more compares or operations in a branch than allowed: "etcdserver: too many operations in txn request" (InvalidArgument).</summary>
    TooManyOps,

    /// <summary>A transaction writes one key twice in a branch: "etcdserver: duplicate key given in txn request" (InvalidArgument).</summary>
    DuplicateKey,

    /// <summary>A request is larger than the limit: "etcdserver: request is too large" (InvalidArgument).</summary>
    RequestTooLarge,

    /// <summary>A sort order or target that does not exist: "etcdserver: invalid sort option" (InvalidArgument).</summary>
    InvalidSortOption,

    /// <summary>A revision at or below the compaction was asked for: "etcdserver: mvcc: required revision has been compacted" (OutOfRange).</summary>
    Compacted,

    /// <summary>A revision above the current one was asked for: "etcdserver: mvcc: required revision is a future revision" (OutOfRange).</summary>
    FutureRevision,

    /// <summary>No lease with the id (revoke, keep-alive, or a put naming it): "etcdserver: requested lease not found" (NotFound).</summary>
    LeaseNotFound,

    /// <summary>A grant names an id a lease already has: "etcdserver: lease already exists" (FailedPrecondition).</summary>
    LeaseExists,

    /// <summary>A grant asks for more than <see cref="LeaseOptions.MaxTtlSeconds"/>: "etcdserver: too large lease TTL" (OutOfRange).</summary>
    LeaseTtlTooLarge,

    /// <summary>A replicated store raised its corruption alarm (members disagree on their data); writes are refused: "etcdserver: corrupt cluster" (DataLoss).</summary>
    Corrupt,

    /// <summary>A replicated store was asked for what only the Raft leader can answer (whether a learner is in sync) on a follower: "etcdserver: not leader" (FailedPrecondition).</summary>
    NotLeader,

    /// <summary>A learner whose log is not yet close to the leader's (below 90% of the leader's match index, etcd's rule) was to be promoted: "etcdserver: can only promote a learner member which is in sync with leader" (FailedPrecondition).</summary>
    LearnerNotReady,
}
