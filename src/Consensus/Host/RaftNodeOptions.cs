using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.Storage.IO;
using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// Settings of one <see cref="RaftNode{TResult}"/>. Each property checks its own range when set and
/// throws <see cref="ArgumentOutOfRangeException"/> whose <see cref="ArgumentException.ParamName"/> is
/// the property's name; rules between properties (and the required <see cref="NodeId"/> and
/// <see cref="DataDirectory"/>) are checked by <see cref="RaftNode{TResult}.StartAsync"/>, which
/// throws <see cref="ArgumentException"/> naming the options involved.
/// </summary>
/// <remarks>
/// <para>An immutable record with a parameterless constructor and <c>init</c> accessors (binds from
/// Microsoft.Extensions.Configuration); thread-safe to share.</para>
/// <para><b>Deterministic runs</b> (a simulator driving a whole cluster on one thread): set
/// <see cref="Scheduler"/> to a single-threaded <see cref="TaskScheduler"/>, <see cref="TimeProvider"/>
/// to a manual clock, <see cref="FileSystem"/> to a simulated disk, <c>Log.Wal.Threading</c> to
/// <c>WalThreading.CallerThread</c>, and <see cref="RaftOptions.RandomSeed"/> in <see cref="Raft"/>.
/// The node then starts no thread, uses no thread-pool work and reads no clock of its own.</para>
/// </remarks>
public sealed record RaftNodeOptions
{
    /// <summary>The default <see cref="TickInterval"/>: 100 ms (etcd's heartbeat interval).</summary>
    public static readonly TimeSpan DefaultTickInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>The default <see cref="ProposalTimeout"/>: 5 s.</summary>
    public static readonly TimeSpan DefaultProposalTimeout = TimeSpan.FromSeconds(5);

    /// <summary>The default <see cref="ReadIndexTimeout"/>: 5 s.</summary>
    public static readonly TimeSpan DefaultReadIndexTimeout = TimeSpan.FromSeconds(5);

    /// <summary>The default <see cref="ReadIndexRetryInterval"/>: 500 ms (etcd's readIndexRetryTime).</summary>
    public static readonly TimeSpan DefaultReadIndexRetryInterval = TimeSpan.FromMilliseconds(500);

    /// <summary>The default <see cref="SnapshotEveryEntries"/>: 10,000 applied entries.</summary>
    public const ulong DefaultSnapshotEveryEntries = 10_000;

    /// <summary>The default <see cref="SnapshotEveryLogBytes"/>: 64 MiB of applied entry data.</summary>
    public const long DefaultSnapshotEveryLogBytes = 64L * 1024 * 1024;

    /// <summary>The default <see cref="DeduplicationWindow"/>: the last 10,000 request ids of each proposing node.</summary>
    public const int DefaultDeduplicationWindow = 10_000;

    /// <summary>Creates options with every default and no <see cref="NodeId"/> or <see cref="DataDirectory"/> yet (both required).</summary>
    public RaftNodeOptions()
    {
    }

    /// <summary>Every default; set <see cref="NodeId"/> and <see cref="DataDirectory"/> with a <c>with</c> expression.</summary>
    public static RaftNodeOptions Default { get; } = new();

    /// <summary>
    /// This node's id, unique in the cluster and never reused; at least 1. Required: 0 (the
    /// default, "not set" — a configuration binder writes it back unchanged) is refused by
    /// <see cref="RaftNode{TResult}.StartAsync"/>.
    /// </summary>
    public ulong NodeId { get; init; }

    /// <summary>
    /// The voters of a new cluster: used only when the data directory holds no log yet, to
    /// bootstrap it. Null means join: the node starts with no configuration and waits for a leader
    /// (of a cluster that added it) to send it a snapshot. Ignored once the log exists.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Empty, or contains 0 (ParamName "InitialVoters").</exception>
    public IReadOnlyList<ulong>? InitialVoters
    {
        get;
        init
        {
            if (value is not null && (value.Count == 0 || value.Contains(0UL)))
            {
                throw new ArgumentOutOfRangeException(nameof(InitialVoters), value, $"{nameof(InitialVoters)} must be null (join) or a non-empty list of ids of at least 1.");
            }

            field = value;
        }
    }

    /// <summary>
    /// The directory of this node's log (its <c>wal</c> and <c>snap</c> subdirectories); the node
    /// holds its lock. Required: empty (the default, "not set") is refused by <see cref="RaftNode{TResult}.StartAsync"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to white space only (ParamName "DataDirectory").</exception>
    public string DataDirectory
    {
        get;
        init
        {
            ArgumentNullException.ThrowIfNull(value, nameof(DataDirectory));
            if (value.Length > 0 && string.IsNullOrWhiteSpace(value))
            {
                throw new ArgumentOutOfRangeException(nameof(DataDirectory), value, $"{nameof(DataDirectory)} must be a directory path.");
            }

            field = value;
        }
    } = string.Empty;

    /// <summary>The disk; null means the real one (<see cref="PhysicalFileSystem"/>).</summary>
    public IFileSystem? FileSystem { get; init; }

    /// <summary>The clock that drives ticks and timeouts; null means <see cref="System.TimeProvider.System"/>.</summary>
    public TimeProvider? TimeProvider { get; init; }

    /// <summary>
    /// Real time per Raft tick: heartbeats go out every <see cref="RaftOptions.HeartbeatTimeoutTicks"/>
    /// ticks, elections start after <see cref="RaftOptions.ElectionTimeoutTicks"/>. Default
    /// <see cref="DefaultTickInterval"/>; from 1 ms to 1 minute.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Out of range (ParamName "TickInterval").</exception>
    public TimeSpan TickInterval
    {
        get;
        init
        {
            if (value < TimeSpan.FromMilliseconds(1) || value > TimeSpan.FromMinutes(1))
            {
                throw new ArgumentOutOfRangeException(nameof(TickInterval), value, $"{nameof(TickInterval)} must be from 1 ms to 1 minute.");
            }

            field = value;
        }
    } = DefaultTickInterval;

    /// <summary>
    /// The Raft core's settings. <see cref="RaftOptions.Id"/> may be left 0 (the node sets it to
    /// <see cref="NodeId"/>); <see cref="RaftOptions.AppliedIndex"/> must be left null (the node
    /// sets it from the state machine). Default: every default of <see cref="RaftOptions"/>. Bound from
    /// configuration, the section must give <c>Raft:Id</c> too (equal to <see cref="NodeId"/>):
    /// <see cref="RaftOptions"/> refuses an id of 0 when the binder writes it back.
    /// </summary>
    // A fresh instance, never the shared RaftOptions.Default: a configuration binder binds into
    // the existing value (through its init setters), which would change the default for everyone.
    public RaftOptions Raft { get; init; } = new();

    /// <summary>
    /// The durable log's settings (WAL, snapshotter, entry cache, retained entries). Null means
    /// <see cref="DurableRaftLogOptions.Default"/>. Where left at their defaults, the node sets the
    /// log's <see cref="DurableRaftLogOptions.MetricsNodeId"/> to <see cref="NodeId"/>, its clock to
    /// <see cref="TimeProvider"/> and its logger to <see cref="Logger"/>.
    /// </summary>
    public DurableRaftLogOptions? Log { get; init; }

    /// <summary>
    /// Where the node's loop, apply pipeline and background work run. Null (the default) means
    /// the thread pool. Set a single-threaded scheduler for deterministic runs: the node then
    /// starts every task on it and never leaves it (no <c>Task.Run</c>, no <c>ConfigureAwait(false)</c>
    /// in the node, its durable log or the snapshotter). The state machine and transport it is given
    /// should not leave it either: the node resumes on the scheduler after awaiting them, but an
    /// <see cref="IStateMachine{TResult}"/> or <see cref="Transport.IRaftTransport"/> that awaits with
    /// <c>ConfigureAwait(false)</c> runs its own remaining work on the thread pool, and such a run
    /// depends on timing.
    /// </summary>
    public TaskScheduler? Scheduler { get; init; }

    /// <summary>
    /// Take a snapshot (and compact the log) once this many entries were applied since the last
    /// one; 0 turns the count rule off. Default <see cref="DefaultSnapshotEveryEntries"/>.
    /// </summary>
    public ulong SnapshotEveryEntries { get; init; } = DefaultSnapshotEveryEntries;

    /// <summary>
    /// Take a snapshot once this many bytes of entry data were applied since the last one; 0 turns
    /// the byte rule off. Default <see cref="DefaultSnapshotEveryLogBytes"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Negative (ParamName "SnapshotEveryLogBytes").</exception>
    public long SnapshotEveryLogBytes
    {
        get;
        init
        {
            if (value < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(SnapshotEveryLogBytes), value, $"{nameof(SnapshotEveryLogBytes)} must be 0 (off) or more.");
            }

            field = value;
        }
    } = DefaultSnapshotEveryLogBytes;

    /// <summary>
    /// How long a proposal that left this node — forwarded to the leader, or appended by this node
    /// as leader before it lost leadership — may stay unanswered before its call fails with
    /// <see cref="ProposalDroppedException"/> (<see cref="ProposalDropReason.TimedOut"/>). Also bounds
    /// forwarded membership changes and leadership transfers. A proposal on a node that stays leader
    /// never times out: it is applied, or fails when leadership is lost. Default
    /// <see cref="DefaultProposalTimeout"/>; at least one <see cref="TickInterval"/> (checked at start).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Zero or negative (ParamName "ProposalTimeout").</exception>
    public TimeSpan ProposalTimeout
    {
        get;
        init => field = OptionChecks.Positive(value, nameof(ProposalTimeout));
    } = DefaultProposalTimeout;

    /// <summary>
    /// How long <see cref="RaftNode{TResult}.ReadIndexAsync"/> waits for a leader to confirm a read
    /// point (retrying every <see cref="ReadIndexRetryInterval"/>) before it fails with
    /// <see cref="NoLeaderException"/> (no leader known) or <see cref="TimeoutException"/>.
    /// Default <see cref="DefaultReadIndexTimeout"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Zero or negative (ParamName "ReadIndexTimeout").</exception>
    public TimeSpan ReadIndexTimeout
    {
        get;
        init => field = OptionChecks.Positive(value, nameof(ReadIndexTimeout));
    } = DefaultReadIndexTimeout;

    /// <summary>How long a read-index round waits for its answer before the node asks again (the request or its answer may be lost). Default <see cref="DefaultReadIndexRetryInterval"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Zero or negative (ParamName "ReadIndexRetryInterval").</exception>
    public TimeSpan ReadIndexRetryInterval
    {
        get;
        init => field = OptionChecks.Positive(value, nameof(ReadIndexRetryInterval));
    } = DefaultReadIndexRetryInterval;

    /// <summary>
    /// How many of each proposing node's most recent request ids every replica remembers to drop
    /// a command appended twice (a forwarded proposal duplicated by the network). Part of every
    /// snapshot; keep it equal on all nodes. Default <see cref="DefaultDeduplicationWindow"/>; at least 1.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Below 1 (ParamName "DeduplicationWindow").</exception>
    public int DeduplicationWindow
    {
        get;
        init => field = OptionChecks.AtLeast(value, 1, nameof(DeduplicationWindow));
    } = DefaultDeduplicationWindow;

    /// <summary>Where the node logs elections, leader changes, snapshots, dropped-message summaries and a fail-stop; null means no logging.</summary>
    public ILogger? Logger { get; init; }

    /// <summary>
    /// How many Readies the loop may have handed to the log and not yet seen durable (the core's
    /// <see cref="RawNode.MaxOutstandingReadies"/>): the loop writes the next Ready's records while
    /// the previous fsync runs, and the write-ahead log's group commit merges them. 1 waits for each
    /// write before taking the next Ready. Internal: a tuning knob for the benchmarks and the tests
    /// of both paths, not a setting users need. Default <see cref="DefaultMaxReadiesInFlight"/>.
    /// </summary>
    internal int MaxReadiesInFlight
    {
        get;
        init => field = OptionChecks.AtLeast(value, 1, nameof(MaxReadiesInFlight));
    } = DefaultMaxReadiesInFlight;

    /// <summary>The default of <see cref="MaxReadiesInFlight"/>.</summary>
    internal const int DefaultMaxReadiesInFlight = 8;

    /// <summary>Checks what no single setter can. Called by <see cref="RaftNode{TResult}.StartAsync"/>.</summary>
    /// <exception cref="ArgumentException">A rule is broken; the message names the options involved.</exception>
    internal void Validate()
    {
        if (NodeId == 0)
        {
            throw new ArgumentException($"{nameof(NodeId)} must be set (at least 1).", nameof(NodeId));
        }

        if (string.IsNullOrWhiteSpace(DataDirectory))
        {
            throw new ArgumentException($"{nameof(DataDirectory)} must be set.", nameof(DataDirectory));
        }

        ArgumentNullException.ThrowIfNull(Raft, nameof(Raft));
        if (Raft.Id != 0 && Raft.Id != NodeId)
        {
            throw new ArgumentException($"{nameof(Raft)}.{nameof(RaftOptions.Id)} ({Raft.Id}) must be 0 or equal {nameof(NodeId)} ({NodeId}).", nameof(Raft));
        }

        if (Raft.AppliedIndex is not null)
        {
            throw new ArgumentException($"{nameof(Raft)}.{nameof(RaftOptions.AppliedIndex)} must be left null: the node sets it from the state machine's applied index.", nameof(Raft));
        }

        if (ProposalTimeout < TickInterval || ReadIndexTimeout < TickInterval || ReadIndexRetryInterval < TickInterval)
        {
            throw new ArgumentException(
                $"{nameof(ProposalTimeout)} ({ProposalTimeout}), {nameof(ReadIndexTimeout)} ({ReadIndexTimeout}) and {nameof(ReadIndexRetryInterval)} ({ReadIndexRetryInterval}) must each be at least {nameof(TickInterval)} ({TickInterval}): timeouts are counted in ticks.",
                nameof(ProposalTimeout));
        }
    }

    /// <summary>A duration in whole ticks, at least one.</summary>
    internal long ToTicks(TimeSpan duration) => Math.Max(1, (long)Math.Ceiling(duration / TickInterval));
}
