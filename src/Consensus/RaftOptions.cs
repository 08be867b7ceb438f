namespace EmbeddedRaft.Consensus;

/// <summary>
/// Settings of one <see cref="RawNode"/>. Each property checks its own range when set
/// (<see cref="ArgumentOutOfRangeException"/> naming it); rules between properties are checked
/// by <see cref="Validate"/>, which the <see cref="RawNode"/> constructor calls.
/// </summary>
/// <remarks>
/// An immutable record: a restart changes only what it must, e.g.
/// <c>new RawNode(options with { AppliedIndex = applied }, storage)</c>. Values are validated
/// again by the <c>with</c> expression's setters. Thread-safe to share.
/// </remarks>
public sealed record RaftOptions
{
    private readonly int _electionTimeoutTicks = 10;
    private readonly int _heartbeatTimeoutTicks = 1;
    private readonly ulong _maxSizePerMessageBytes = 1024 * 1024;
    private readonly int _maxInflightMessages = 256;

    /// <summary>
    /// The largest <see cref="ElectionTimeoutTicks"/>: the randomized timeout, up to twice the
    /// setting, must fit in an <see cref="int"/>.
    /// </summary>
    public const int MaxElectionTimeoutTicks = int.MaxValue / 2;

    /// <summary>Creates options for node <paramref name="id"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="id"/> is 0 (reserved for "none").</exception>
    public RaftOptions(ulong id)
    {
        Id = id;
    }

    /// <summary>This node's id; never 0 (<see cref="ArgumentOutOfRangeException"/>).</summary>
    public ulong Id
    {
        get;
        init
        {
            ArgumentOutOfRangeException.ThrowIfZero(value, nameof(Id));
            field = value;
        }
    }

    /// <summary>
    /// Ticks a follower waits without hearing from a leader before campaigning. The actual
    /// timeout is drawn uniformly from <c>[ElectionTimeoutTicks, 2 * ElectionTimeoutTicks)</c>
    /// after every role change (Raft §5.2), so that split votes resolve. Default 10; at most
    /// <see cref="MaxElectionTimeoutTicks"/>.
    /// </summary>
    public int ElectionTimeoutTicks
    {
        get => _electionTimeoutTicks;
        init
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1, nameof(ElectionTimeoutTicks));
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, MaxElectionTimeoutTicks, nameof(ElectionTimeoutTicks));
            _electionTimeoutTicks = value;
        }
    }

    /// <summary>Ticks between leader heartbeats; must be less than <see cref="ElectionTimeoutTicks"/>. Default 1.</summary>
    public int HeartbeatTimeoutTicks
    {
        get => _heartbeatTimeoutTicks;
        init
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1, nameof(HeartbeatTimeoutTicks));
            _heartbeatTimeoutTicks = value;
        }
    }

    /// <summary>
    /// Seed of the generator that draws election timeouts. Null (the default) derives one from
    /// <see cref="Id"/>, so nodes differ but every run is reproducible.
    /// </summary>
    public ulong? RandomSeed { get; init; }

    /// <summary>
    /// Run a pre-election before campaigning (Raft thesis §9.6): a node whose log is behind, or
    /// that cannot reach a quorum, no longer disrupts the cluster by bumping terms.
    /// </summary>
    public bool PreVote { get; init; }

    /// <summary>
    /// A leader steps down if it has not heard from a quorum within an election timeout, and a
    /// follower that heard from a leader within the election timeout ignores vote requests
    /// (thesis §6.2, §4.2.3). Required by <see cref="ReadOnlyMode.LeaseBased"/>.
    /// </summary>
    public bool CheckQuorum { get; init; }

    /// <summary>How read-index requests are confirmed. Default <see cref="ReadOnlyMode.Safe"/>.</summary>
    public ReadOnlyMode ReadOnlyMode
    {
        get;
        init
        {
            if (!Enum.IsDefined(value))
            {
                throw new ArgumentOutOfRangeException(nameof(ReadOnlyMode), value, "Unknown read-only mode.");
            }

            field = value;
        }
    }

    /// <summary>
    /// With <see cref="ReadOnlyMode.LeaseBased"/>: how many ticks the leader takes off its lease to
    /// allow for clocks that run at different rates. The lease of a leader ends
    /// <c>ElectionTimeoutTicks - LeaseDriftMarginTicks</c> of its own ticks after the send time
    /// of the oldest heartbeat a quorum has acknowledged; it is safe as long as, whenever a
    /// follower's clock advances <see cref="ElectionTimeoutTicks"/> ticks, the leader's advances
    /// at least <c>ElectionTimeoutTicks - LeaseDriftMarginTicks</c>. Ticks come at arbitrary
    /// moments, so one tick of each side is lost to granularity: followers' clocks may run up to
    /// <c>(E - 1) / (E - margin)</c> times as fast as the leader's (in perfect lockstep a margin
    /// of 0 suffices). Null (the default) means <c>ElectionTimeoutTicks / 5</c> (rounded down):
    /// 2 ticks of the default 10, followers' clocks up to 9/8 of the leader's rate. 0 is a value
    /// (no allowance). Must be less than <see cref="ElectionTimeoutTicks"/> (checked by <see cref="Validate"/>).
    /// </summary>
    public int? LeaseDriftMarginTicks
    {
        get;
        init
        {
            if (value is { } margin)
            {
                ArgumentOutOfRangeException.ThrowIfNegative(margin, nameof(LeaseDriftMarginTicks));
            }

            field = value;
        }
    }

    /// <summary>The drift margin in effect: <see cref="LeaseDriftMarginTicks"/>, or its default when unset.</summary>
    internal int EffectiveLeaseDriftMarginTicks => LeaseDriftMarginTicks ?? ElectionTimeoutTicks / 5;

    /// <summary>
    /// Upper bound on the entry bytes in one append message (at least one entry is always sent).
    /// 0 means one entry per message; <see cref="ulong.MaxValue"/> means no limit. Default 1 MiB.
    /// </summary>
    public ulong MaxSizePerMessageBytes
    {
        get => _maxSizePerMessageBytes;
        init => _maxSizePerMessageBytes = value;
    }

    /// <summary>Maximum append messages in flight to one follower in the replicate state. Default 256.</summary>
    public int MaxInflightMessages
    {
        get => _maxInflightMessages;
        init
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1, nameof(MaxInflightMessages));
            _maxInflightMessages = value;
        }
    }

    /// <summary>
    /// Maximum entry bytes in flight to one follower; 0 (default) means no byte limit. Otherwise
    /// at least <see cref="MaxSizePerMessageBytes"/>, so that one full append fits.
    /// </summary>
    public ulong MaxInflightBytes { get; init; }

    /// <summary>
    /// Maximum data bytes of entries the leader holds uncommitted; proposals beyond it are
    /// dropped with <see cref="ProposalDropReason.UncommittedSizeLimitExceeded"/>. A single
    /// proposal is always accepted when nothing is uncommitted. 0 (default) means no limit.
    /// </summary>
    public ulong MaxUncommittedEntriesBytes { get; init; }

    /// <summary>Maximum committed-entry bytes handed out in one <see cref="Ready"/> (at least one entry); 0 (default) means no limit.</summary>
    public ulong MaxCommittedBytesPerReady { get; init; }

    /// <summary>
    /// A leader that applies a configuration change removing it from the voters (removal, or
    /// demotion to learner once a joint configuration is left) steps down, so the remaining
    /// voters elect a new leader (Raft thesis §4.2.2). Default true. With false the leader keeps
    /// replicating without counting itself, as etcd-io/raft does by default.
    /// </summary>
    public bool StepDownOnRemoval { get; init; } = true;

    /// <summary>Followers drop proposals instead of forwarding them to the leader.</summary>
    public bool DisableProposalForwarding { get; init; }

    /// <summary>
    /// On restart, the last index the application has already applied: entries up to it are
    /// not handed out again, and they count as committed (the storage's commit index may lag:
    /// commit-only hard-state changes need not be synced). Must be between the storage's
    /// snapshot index and its last index (checked by the <see cref="RawNode"/> constructor,
    /// <see cref="ArgumentOutOfRangeException"/>). Null (the default) means the application's
    /// state is the storage's snapshot: entries after the snapshot index are handed out again.
    /// 0 is an explicit value ("nothing applied"), valid only over a storage without a snapshot.
    /// Set it with a <c>with</c> expression on the options the node ran with.
    /// </summary>
    public ulong? AppliedIndex { get; init; }

    /// <summary>Checks the rules between properties.</summary>
    /// <exception cref="ArgumentException">A rule is broken; the message names the options involved.</exception>
    public void Validate()
    {
        if (HeartbeatTimeoutTicks >= ElectionTimeoutTicks)
        {
            throw new ArgumentException(
                $"{nameof(HeartbeatTimeoutTicks)} ({HeartbeatTimeoutTicks}) must be less than {nameof(ElectionTimeoutTicks)} ({ElectionTimeoutTicks}).",
                nameof(HeartbeatTimeoutTicks));
        }

        if (MaxInflightBytes != 0 && MaxInflightBytes < MaxSizePerMessageBytes)
        {
            throw new ArgumentException(
                $"{nameof(MaxInflightBytes)} ({MaxInflightBytes}) must be 0 (no limit) or at least {nameof(MaxSizePerMessageBytes)} ({MaxSizePerMessageBytes}).",
                nameof(MaxInflightBytes));
        }

        if (EffectiveLeaseDriftMarginTicks >= ElectionTimeoutTicks)
        {
            throw new ArgumentException(
                $"{nameof(LeaseDriftMarginTicks)} ({LeaseDriftMarginTicks}) must be less than {nameof(ElectionTimeoutTicks)} ({ElectionTimeoutTicks}).",
                nameof(LeaseDriftMarginTicks));
        }

        if (ReadOnlyMode == ReadOnlyMode.LeaseBased && !CheckQuorum)
        {
            throw new ArgumentException(
                $"{nameof(ReadOnlyMode)}.{nameof(ReadOnlyMode.LeaseBased)} requires {nameof(CheckQuorum)}: without it a deposed leader could answer reads from a stale lease.",
                nameof(ReadOnlyMode));
        }
    }
}
