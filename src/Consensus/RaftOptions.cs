namespace EmbeddedRaft.Consensus;

/// <summary>
/// Settings of one <see cref="RawNode"/>. Each property checks its own range when set and throws
/// <see cref="ArgumentOutOfRangeException"/> whose <see cref="ArgumentException.ParamName"/> is the
/// property's name; rules between properties (and that <see cref="Id"/> is set) are checked by the
/// <see cref="RawNode"/> constructor, which throws <see cref="ArgumentException"/> naming the
/// options involved.
/// </summary>
/// <remarks>
/// An immutable record with a parameterless constructor and <c>init</c> accessors, so it binds
/// from Microsoft.Extensions.Configuration; start from <see cref="Default"/> or
/// <c>new RaftOptions(id)</c>. A restart changes only what it must, e.g.
/// <c>new RawNode(options with { AppliedIndex = applied }, storage)</c>: the <c>with</c>
/// expression's setters validate again. Thread-safe to share.
/// </remarks>
public sealed record RaftOptions
{
    /// <summary>The default <see cref="ElectionTimeoutTicks"/>.</summary>
    public const int DefaultElectionTimeoutTicks = 10;

    /// <summary>The default <see cref="HeartbeatTimeoutTicks"/>.</summary>
    public const int DefaultHeartbeatTimeoutTicks = 1;

    /// <summary>The default <see cref="MaxSizePerMessageBytes"/>: 1 MiB.</summary>
    public const ulong DefaultMaxSizePerMessageBytes = 1024 * 1024;

    /// <summary>The default <see cref="MaxInflightMessages"/>.</summary>
    public const int DefaultMaxInflightMessages = 256;

    /// <summary>
    /// The largest <see cref="ElectionTimeoutTicks"/>: the randomized timeout, up to twice the
    /// setting, must fit in an <see cref="int"/>.
    /// </summary>
    public const int MaxElectionTimeoutTicks = int.MaxValue / 2;

    /// <summary>Creates options with every default and no <see cref="Id"/> yet (set it before use: the <see cref="RawNode"/> constructor refuses 0).</summary>
    public RaftOptions()
    {
    }

    /// <summary>Creates options for node <paramref name="id"/>, everything else default.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="id"/> is 0 (reserved for "none").</exception>
    public RaftOptions(ulong id)
    {
        Id = id;
    }

    /// <summary>Every default, no <see cref="Id"/>: <c>RaftOptions.Default with { Id = 1 }</c>.</summary>
    public static RaftOptions Default { get; } = new();

    /// <summary>This node's id, unique in the cluster and never reused; at least 1 (0 means "no node"). Required.</summary>
    public ulong Id
    {
        get;
        init
        {
            if (value == 0)
            {
                throw new ArgumentOutOfRangeException(nameof(Id), value, $"{nameof(Id)} must be at least 1 (0 means \"no node\").");
            }

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
        get;
        init => field = OptionChecks.InRange(value, 1, MaxElectionTimeoutTicks, nameof(ElectionTimeoutTicks));
    } = DefaultElectionTimeoutTicks;

    /// <summary>Ticks between leader heartbeats; must be less than <see cref="ElectionTimeoutTicks"/>. Default 1.</summary>
    public int HeartbeatTimeoutTicks
    {
        get;
        init
        {
            if (value < 1)
            {
                throw new ArgumentOutOfRangeException(nameof(HeartbeatTimeoutTicks), value, $"{nameof(HeartbeatTimeoutTicks)} must be at least 1 (and less than {nameof(ElectionTimeoutTicks)}).");
            }

            field = value;
        }
    } = DefaultHeartbeatTimeoutTicks;

    /// <summary>
    /// Seed of the generator that draws randomized election timeouts. Null (the default, right in
    /// production) draws a fresh seed from the operating system's cryptographic random source
    /// each time a <see cref="RawNode"/> is created, so nodes of one cluster (and one node across
    /// restarts) never share a jitter sequence, which would make their timeouts fire together and
    /// split votes. Set it in tests and simulations that must replay exactly: with the same seed,
    /// options, storage and calls, a node produces the same outputs.
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
        init => field = OptionChecks.Defined(value, nameof(ReadOnlyMode));
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
    /// (no allowance). Must be less than <see cref="ElectionTimeoutTicks"/> (checked by the <see cref="RawNode"/> constructor).
    /// </summary>
    public int? LeaseDriftMarginTicks
    {
        get;
        init
        {
            if (value is { } margin)
            {
                if (margin < 0)
                {
                    throw new ArgumentOutOfRangeException(nameof(LeaseDriftMarginTicks), margin, $"{nameof(LeaseDriftMarginTicks)} must be null (a fifth of {nameof(ElectionTimeoutTicks)}) or between 0 and {nameof(ElectionTimeoutTicks)} - 1.");
                }
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
    public ulong MaxSizePerMessageBytes { get; init; } = DefaultMaxSizePerMessageBytes;

    /// <summary>Maximum append messages in flight to one follower in the replicate state. Default 256.</summary>
    public int MaxInflightMessages
    {
        get;
        init => field = OptionChecks.AtLeast(value, 1, nameof(MaxInflightMessages));
    } = DefaultMaxInflightMessages;

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

    /// <summary>
    /// Maximum committed-entry bytes handed out in one <see cref="Ready"/> (at least one entry), and
    /// in one batch RaftNode's apply pipeline hands its state machine when it merges committed
    /// batches queued behind a running apply (at least one batch); 0 (default) means no limit.
    /// </summary>
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

    /// <summary>Raft rules this node breaks on purpose: only the simulator's broken-rule tests set any (<see cref="TestOnlyBrokenRules"/>).</summary>
    internal TestOnlyBrokenRules BrokenRules
    {
        get;
        init => field = value ?? throw new ArgumentNullException(nameof(BrokenRules));
    } = TestOnlyBrokenRules.None;

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

    /// <summary>
    /// Checks what no single setter can: that <see cref="Id"/> was set, and the rules between
    /// properties. Called by the <see cref="RawNode"/> constructor.
    /// </summary>
    /// <exception cref="ArgumentException">A rule is broken; the message names the options involved.</exception>
    internal void Validate()
    {
        if (Id == 0)
        {
            throw new ArgumentException($"{nameof(Id)} must be set (at least 1): every node needs its cluster-unique id.", nameof(Id));
        }

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
