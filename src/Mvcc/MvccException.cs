namespace EmbeddedRaft.Mvcc;

/// <summary>
/// An error etcd's KV service would return for the same request on the same history: the request
/// was refused and the store is unchanged. <see cref="Error"/> says which; <see cref="EtcdMessage"/>
/// is etcd's exact message and <see cref="GrpcStatusCode"/> etcd's gRPC status code, for servers
/// that speak etcd's protocol. Revision errors have their own types with the facts:
/// <see cref="RevisionCompactedException"/> and <see cref="FutureRevisionException"/>.
/// </summary>
public class MvccException : Exception
{
    /// <summary>Creates the exception for <paramref name="error"/>, with etcd's message.</summary>
    public MvccException(MvccError error) : this(error, MessageOf(error))
    {
    }

    /// <summary>Creates the exception for <paramref name="error"/> with a more specific message (<see cref="EtcdMessage"/> stays etcd's).</summary>
    public MvccException(MvccError error, string message) : base(message)
    {
        Error = error;
    }

    /// <summary>Which of etcd's errors this is.</summary>
    public MvccError Error { get; }

    /// <summary>etcd's exact message for <see cref="Error"/>, e.g. "etcdserver: key is not provided".</summary>
    public string EtcdMessage => MessageOf(Error);

    /// <summary>etcd's gRPC status code for <see cref="Error"/>: 3 (InvalidArgument), 5 (NotFound), 9 (FailedPrecondition), 11 (OutOfRange) or 15 (DataLoss).</summary>
    public int GrpcStatusCode => Error switch
    {
        MvccError.Compacted or MvccError.FutureRevision or MvccError.LeaseTtlTooLarge => 11,
        MvccError.LeaseNotFound => 5,
        MvccError.LeaseExists or MvccError.NotLeader or MvccError.LearnerNotReady => 9,
        MvccError.Corrupt => 15,
        _ => 3,
    };

    /// <summary>etcd's message for an error.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="error"/> is not a defined value.</exception>
    public static string MessageOf(MvccError error) => error switch
    {
        MvccError.EmptyKey => "etcdserver: key is not provided",
        MvccError.KeyNotFound => "etcdserver: key not found",
        MvccError.ValueProvided => "etcdserver: value is provided",
        MvccError.LeaseProvided => "etcdserver: lease is provided",
        MvccError.TooManyOps => "etcdserver: too many operations in txn request",
        MvccError.DuplicateKey => "etcdserver: duplicate key given in txn request",
        MvccError.RequestTooLarge => "etcdserver: request is too large",
        MvccError.InvalidSortOption => "etcdserver: invalid sort option",
        MvccError.Compacted => "etcdserver: mvcc: required revision has been compacted",
        MvccError.FutureRevision => "etcdserver: mvcc: required revision is a future revision",
        MvccError.LeaseNotFound => "etcdserver: requested lease not found",
        MvccError.LeaseExists => "etcdserver: lease already exists",
        MvccError.LeaseTtlTooLarge => "etcdserver: too large lease TTL",
        MvccError.Corrupt => "etcdserver: corrupt cluster",
        MvccError.NotLeader => "etcdserver: not leader",
        MvccError.LearnerNotReady => "etcdserver: can only promote a learner member which is in sync with leader",
        _ => throw new ArgumentOutOfRangeException(nameof(error), error, "Not an MvccError."),
    };
}
