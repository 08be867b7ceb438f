using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus;

/// <summary>
/// Everything a <see cref="RawNode"/> needs its host to do: state to persist, entries to apply,
/// messages to send. Handle a Ready in this order, then call <see cref="RawNode.Advance"/>:
/// <list type="number">
/// <item>Send <see cref="Messages"/>. These never depend on this Ready being durable, so a
/// leader may send its appends while its own disk write is in progress (Raft thesis §10.2.1).</item>
/// <item>Persist <see cref="Snapshot"/>, <see cref="Entries"/> and <see cref="HardState"/>
/// (fsync if <see cref="MustSync"/>).</item>
/// <item>Only then send <see cref="MessagesAfterPersist"/>: acknowledgements and votes, which
/// promise that state is durable (thesis §3.8).</item>
/// <item>Apply <see cref="Snapshot"/> then <see cref="CommittedEntries"/> to the state machine,
/// and serve <see cref="ReadStates"/> once applied up to their index. For each
/// <see cref="EntryType.ConfChange"/> entry call <see cref="RawNode.ApplyConfChange"/> and persist
/// the configuration it returns with the applied index.</item>
/// </list>
/// Sending everything after persisting is also correct, only slower.
/// </summary>
/// <remarks>Entries and messages share memory with the node's log but are never mutated; a Ready may be kept.</remarks>
public sealed class Ready
{
    internal Ready()
    {
    }

    /// <summary>Set when leader or role changed since the last Ready; informational, not persisted.</summary>
    public SoftState? SoftState { get; internal init; }

    /// <summary>Set when term, vote or commit changed: persist it before sending <see cref="MessagesAfterPersist"/>.</summary>
    public HardState? HardState { get; internal init; }

    /// <summary>Answers to read-index requests (see <see cref="RawNode.ReadIndex"/>).</summary>
    public IReadOnlyList<ReadState> ReadStates { get; internal init; } = [];

    /// <summary>
    /// Proposals this node forwarded to the leader that the leader refused (with the reason, as
    /// the exception <see cref="RawNode.Propose"/> would throw on the leader): fail the matching
    /// pending requests. Nothing to persist.
    /// </summary>
    public IReadOnlyList<RefusedProposal> RefusedProposals { get; internal init; } = [];

    /// <summary>
    /// On a leader: peers that can only be caught up by a snapshot while the storage has none —
    /// a node that joined with empty storage has no configuration until one arrives. Create a
    /// snapshot at the applied index (for <see cref="MemoryStorage"/>:
    /// <see cref="MemoryStorage.CreateSnapshot"/>); the leader sends it on the peer's next
    /// heartbeat response. Reported each time the leader tries and finds none.
    /// </summary>
    public IReadOnlyList<ulong> PeersNeedingSnapshot { get; internal init; } = [];

    /// <summary>Entries to append to stable storage (replacing any stored entries from the first one's index on).</summary>
    public ReadOnlyMemory<Entry> Entries { get; internal init; }

    /// <summary>A snapshot received from the leader, to persist and apply (it replaces the whole log).</summary>
    public SnapshotMetadata? Snapshot { get; internal init; }

    /// <summary>
    /// Committed entries to apply, in order. They may include entries of <see cref="Entries"/>: persist first.
    /// Not necessarily every committed entry: a Ready hands out at most
    /// <see cref="RaftOptions.MaxCommittedBytesPerReady"/>, and a batch of entries already durable and still
    /// held in memory ends where the array holding them does (so they are not read back from the storage);
    /// the rest follow in the next Ready.
    /// </summary>
    public ReadOnlyMemory<Entry> CommittedEntries { get; internal init; }

    /// <summary>Messages that may be sent immediately, before this Ready is persisted.</summary>
    public IReadOnlyList<Message> Messages { get; internal init; } = [];

    /// <summary>Messages that may only be sent after this Ready's state is durable.</summary>
    public IReadOnlyList<Message> MessagesAfterPersist { get; internal init; } = [];

    /// <summary>
    /// Whether the writes must be synced to disk (entries, a snapshot, or a term or vote change)
    /// rather than merely buffered. False only when the hard state changed in its commit index alone:
    /// losing that in a crash is harmless (see <see cref="RaftOptions.AppliedIndex"/>).
    /// </summary>
    public bool MustSync { get; internal init; }
}
