namespace EmbeddedRaft.Consensus.Messages;

/// <summary>
/// A Raft message: one type for every kind, as in etcd's raftpb.Message, so transports and the
/// write-ahead log handle a single shape. Which fields matter depends on <see cref="Type"/>.
/// </summary>
/// <remarks>
/// Messages are immutable once built. <see cref="Entries"/> may share memory with the sender's
/// log; the core never writes to an entry slot after it has been handed out, so holding a
/// message is always safe.
/// </remarks>
public sealed class Message
{
    /// <summary>The kind of message.</summary>
    public MessageType Type { get; init; }

    /// <summary>Recipient node id.</summary>
    public ulong To { get; init; }

    /// <summary>Sender node id (for <see cref="MessageType.TransferLeader"/>: the transferee).</summary>
    public ulong From { get; init; }

    /// <summary>The sender's term; 0 for local messages and forwarded proposals.</summary>
    public ulong Term { get; init; }

    /// <summary>
    /// Append: term of the entry at <see cref="Index"/>. Vote requests: term of the candidate's last entry.
    /// Rejected append responses: term of the entry at <see cref="RejectHint"/> in the follower's log.
    /// </summary>
    public ulong LogTerm { get; init; }

    /// <summary>
    /// Append: index preceding <see cref="Entries"/>. Append response: last index the follower matched
    /// (or the rejected index). Vote requests: candidate's last index. Read-index response: the read index.
    /// </summary>
    public ulong Index { get; init; }

    /// <summary>Entries to append, or for read-index messages a single entry carrying the request context.</summary>
    public ReadOnlyMemory<Entry> Entries { get; init; }

    /// <summary>The sender's commit index (append and heartbeat).</summary>
    public ulong Commit { get; init; }

    /// <summary>The snapshot to install (<see cref="MessageType.Snapshot"/> only).</summary>
    public SnapshotMetadata? Snapshot { get; init; }

    /// <summary>True when the request is refused (append mismatch, vote denied, snapshot failed).</summary>
    public bool Reject { get; init; }

    /// <summary>On a rejected append: the follower's suggestion for where the leader should probe next.</summary>
    public ulong RejectHint { get; init; }

    /// <summary>Opaque context: read-index round ids on heartbeats, the transfer marker on vote requests.</summary>
    public ReadOnlyMemory<byte> Context { get; init; }

    /// <inheritdoc/>
    public override string ToString() =>
        $"{From}->{To} {Type} Term:{Term} Log:{LogTerm}/{Index} Commit:{Commit}"
        + (Reject ? $" Rejected (Hint: {RejectHint})" : string.Empty)
        + (Entries.Length > 0 ? $" Entries:{Entries.Length}" : string.Empty)
        + (Snapshot is { } s ? $" Snapshot:{s.Term}/{s.Index}" : string.Empty);
}
