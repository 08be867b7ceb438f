using EmbeddedRaft.Consensus;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Mvcc;
using EmbeddedRaft.Storage;
using Grpc.Core;

namespace EmbeddedRaft.Samples.EtcdCompatibleServer;

/// <summary>
/// etcd's gRPC errors (etcd 3.4's api/v3rpc/rpctypes: the same status codes and messages, which
/// etcd's clients match on to decide what to retry), and the mapping from the store's exceptions.
/// </summary>
internal static class EtcdErrors
{
    public static RpcException Rpc(StatusCode code, string message) => new(new Status(code, message), message);

    public static RpcException NoLeader => Rpc(StatusCode.Unavailable, "etcdserver: no leader");

    public static RpcException NotLeader => Rpc(StatusCode.FailedPrecondition, "etcdserver: not leader");

    public static RpcException LeaderChanged => Rpc(StatusCode.Unavailable, "etcdserver: leader changed");

    public static RpcException Stopped => Rpc(StatusCode.Unavailable, "etcdserver: server stopped");

    public static RpcException TooManyRequests => Rpc(StatusCode.ResourceExhausted, "etcdserver: too many requests");

    public static RpcException Timeout => Rpc(StatusCode.Unavailable, "etcdserver: request timed out");

    public static RpcException MemberExists => Rpc(StatusCode.FailedPrecondition, "etcdserver: member ID already exist");

    public static RpcException PeerUrlExists => Rpc(StatusCode.FailedPrecondition, "etcdserver: Peer URLs already exists");

    public static RpcException MemberBadUrls => Rpc(StatusCode.InvalidArgument, "etcdserver: given member URLs are invalid");

    public static RpcException MemberNotFound => Rpc(StatusCode.NotFound, "etcdserver: member not found");

    public static RpcException MemberNotLearner => Rpc(StatusCode.FailedPrecondition, "etcdserver: can only promote a learner member");

    public static RpcException LearnerNotReady => Rpc(StatusCode.FailedPrecondition, "etcdserver: can only promote a learner member which is in sync with leader");

    public static RpcException BadLeaderTransferee => Rpc(StatusCode.FailedPrecondition, "etcdserver: bad leader transferee");

    public static RpcException AuthNotEnabled => Rpc(StatusCode.FailedPrecondition, "etcdserver: authentication is not enabled");

    public static RpcException LeaseNotFound => FromMvcc(new MvccException(MvccError.LeaseNotFound));

    /// <summary>
    /// The status etcd answers for what <paramref name="exception"/> means; null for an
    /// <see cref="RpcException"/> (already a status) and for cancellation by the caller (which gRPC
    /// answers itself, as etcd leaves context errors to gRPC).
    /// </summary>
    public static RpcException? ToRpc(Exception exception) => exception switch
    {
        RpcException => null,
        OperationCanceledException => null,
        MvccException mvcc => FromMvcc(mvcc),
        NoLeaderException => NoLeader,
        ProposalDroppedException dropped => FromDrop(dropped.Reason),
        NodeStoppedException or ObjectDisposedException => Stopped,
        TimeoutException => Timeout,
        // etcd answers an error it has no code for as Unknown with the error's text.
        StorageFaultedException or InvariantViolationException => Rpc(StatusCode.Unknown, exception.Message),
        ArgumentException => Rpc(StatusCode.InvalidArgument, exception.Message),
        _ => Rpc(StatusCode.Unknown, exception.Message),
    };

    /// <summary>
    /// etcd's answer for each reason Raft drops a proposal: a proposal that timed out may still be
    /// applied (etcd's "request timed out", not "leader changed", which tells a client nothing was
    /// done); a full uncommitted log is etcd's "too many requests"; the rest are elections and
    /// leadership moves, which etcd's clients retry.
    /// </summary>
    private static RpcException FromDrop(ProposalDropReason reason) => reason switch
    {
        ProposalDropReason.TimedOut => Timeout,
        ProposalDropReason.NoLeader => NoLeader,
        ProposalDropReason.UncommittedSizeLimitExceeded => TooManyRequests,
        _ => LeaderChanged,
    };

    private static RpcException FromMvcc(MvccException exception) => exception.Error switch
    {
        // etcd's messages exactly (clients match them); the store's longer text goes to the log.
        MvccError.Corrupt => Rpc(StatusCode.DataLoss, "etcdserver: corrupt cluster"),
        _ => Rpc((StatusCode)exception.GrpcStatusCode, exception.EtcdMessage),
    };
}
