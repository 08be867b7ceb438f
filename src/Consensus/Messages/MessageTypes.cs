namespace EmbeddedRaft.Consensus.Messages;

/// <summary>Classification helpers over <see cref="MessageType"/>.</summary>
internal static class MessageTypes
{
    /// <summary>The largest defined <see cref="MessageType"/> value.</summary>
    public const MessageType MaxValue = MessageType.ProposalRefused;

    /// <summary>True for messages a node only ever sends to itself; they must never arrive from the network.</summary>
    public static bool IsLocal(MessageType type) =>
        type is MessageType.Hup or MessageType.Beat or MessageType.Unreachable
            or MessageType.SnapshotStatus or MessageType.CheckQuorum;

    /// <summary>True for responses, which are only meaningful from a peer in the configuration.</summary>
    public static bool IsResponse(MessageType type) =>
        type is MessageType.AppendResponse or MessageType.VoteResponse or MessageType.HeartbeatResponse
            or MessageType.Unreachable or MessageType.ReadIndexResponse or MessageType.PreVoteResponse;

    /// <summary>The response type that answers a vote or pre-vote request.</summary>
    public static MessageType VoteResponseFor(MessageType request) => request switch
    {
        MessageType.Vote => MessageType.VoteResponse,
        MessageType.PreVote => MessageType.PreVoteResponse,
        _ => throw new ArgumentOutOfRangeException(nameof(request), request, "Not a vote request."),
    };
}
