using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.Consensus.Membership;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Storage;
using EmbeddedRaft.Storage.IO;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// A Raft node as a .NET service uses it (etcd's raftNode and apply loop): one <see cref="RawNode"/>
/// driven by one loop, a durable log (<see cref="DurableRaftLog"/>) on the write-ahead log and
/// snapshotter, the host's <see cref="IRaftTransport"/>, and the application's
/// <see cref="IStateMachine{TResult}"/>. Start it with <see cref="StartAsync"/>.
/// </summary>
/// <remarks>
/// <para><b>The loop.</b> Every input — ticks from <see cref="RaftNodeOptions.TimeProvider"/>,
/// messages from the transport, proposals, reads, membership and transfer requests — is queued and
/// handled by one loop that owns the <see cref="RawNode"/>. All proposals queued when a turn starts go
/// to the core as one <see cref="RawNode.ProposeBatch"/>. For each Ready the loop sends
/// <see cref="Ready.Messages"/> at once (a leader replicates while its own disk write runs) and
/// hands its records to the log unsynced; a sync pipeline makes written Readies durable (one fsync
/// for all written since its last turn), then sends their <see cref="Ready.MessagesAfterPersist"/>
/// (acknowledgements and votes) in order and reports them to the loop, which advances. A leader's
/// loop never waits for an fsync: it keeps stepping, proposing and writing the next Ready while one
/// is being synced; while a written Ready still waits for its fsync to start, what arrives gathers
/// into the next one (one Ready per fsync, not one per incoming append). Committed entries go to a
/// separate apply pipeline, so applying overlaps persisting; entries not yet durable here wait for
/// the write that holds them first. The applier wakes the loop only when something there waits for
/// an apply (a read, a membership change, a full apply queue).</para>
/// <para><b>Thread-safety.</b> Every public member may be called from any thread, concurrently.</para>
/// <para><b>Failure.</b> A failed write or fsync of the log, an exception from the state machine or a
/// broken invariant stops the node for good (fail-stop: an fsync is never retried, the kernel may
/// have dropped the dirty pages); every pending and later call fails with
/// <see cref="NodeStoppedException"/> whose <see cref="NodeStoppedException.Cause"/> is the failure,
/// and <see cref="Status"/> shows it. Dispose it and start a new node from the disk.</para>
/// </remarks>
/// <typeparam name="TResult">What the state machine returns for one command.</typeparam>
public sealed partial class RaftNode<TResult> : IAsyncDisposable
{
    // The loop stops taking Readies while this many applies are queued: a state machine slower
    // than the log then slows replication instead of filling memory.
    private const int MaxQueuedApplies = 64;

    private readonly RaftNodeOptions _options;
    private readonly bool _acknowledgeBeforeFsync; // TestOnlyBrokenRules: simulator tests only
    private readonly IStateMachine<TResult> _stateMachine;

    // Set when the state machine is durable by itself: snapshots by policy carry no data, and a
    // follower needing one gets the state captured when it is sent (RaftNode.Snapshots.cs).
    private readonly IDurableStateMachine<TResult>? _durableStateMachine;
    private readonly IRaftTransport _transport;
    private readonly DurableRaftLog _log;
    private readonly RawNode _raw;
    private readonly TaskScheduler _scheduler;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly RaftNodeMetrics _metrics;
    private readonly NodeInbox<LoopItem> _inbox = new();
    private readonly NodeInbox<ApplyWork> _applyQueue = new();
    private readonly NodeInbox<SyncItem> _syncQueue = new();
    private readonly ProposalTable<TResult> _proposals = new();

    /// <summary>Callers' releases queued by the applier and not yet seen done by the loop (its stall check: <see cref="ProposalRelease{TResult}.HelpIfStalled"/>).</summary>
    private readonly ConcurrentQueue<ProposalRelease<TResult>> _releasesRunning = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _stateLock = new();
    private readonly List<Channel<LeaderChange>> _leaderSubscribers = [];
    private readonly List<Task> _background = [];
    private readonly long _proposalTimeoutTicks;
    private readonly long _readTimeoutTicks;
    private readonly long _readRetryTicks;
    private readonly long _summaryEveryTicks;

    // Shared (read by Status and callers; written by the loop or the applier).
    private ulong _nextRequestId;
    private ulong _appliedIndex;
    private ulong _persistedIndex;
    private ulong _snapshotIndex;
    private readonly List<(ulong Index, TaskCompletionSource Signal)> _snapshotWaiters = [];
    // Status's picture of the core, under _stateLock, written by the loop only. The whole RaftStatus
    // (progress, configuration, transferee) is taken on each tick and role or leader change
    // (RefreshStatus); the hard state (term, vote, commit) and the core's applied index are copied on
    // every Ready that changes the hard state and every Advance after committed entries
    // (PublishCommitState): a copy and an uncontended lock per Ready, nothing per proposal. Each
    // copy reads the core at that moment, and the core's term, commit and applied never go back, so
    // neither does what Status shows.
    private RaftStatus _raftStatus;
    private HardState _statusHardState;
    private ulong _statusApplied;
    private LeaderChange _leader;
    private bool _stopped;
    private Exception? _stopCause;
    private int _disposed;
    private int _queuedApplies;

    // 1 while the loop waits for the applier to move on (RaftNode.Loop.cs, ArmAppliedWake).
    private int _loopAwaitsApplier;

    private int _snapshotInProgress;

    // The group commit's hand-shake between the loop and the sync pipeline (RaftNode.Readies.cs):
    // 1 while the loop holds back a Ready behind a running write (the pipeline then makes a last
    // call before its next fsync), the last call being answered (completed on stop too, so the
    // pipeline never waits for a loop that has ended), and whether the loop is answering one.
    private int _loopHoldsBackReadies;
    private TaskCompletionSource<bool>? _pendingLastCall;
    private bool _lastCallOpen;
    private long _readiesWritten;
    private Task _loopTask = Task.CompletedTask;
    private Task _applyTask = Task.CompletedTask;
    private Task _syncTask = Task.CompletedTask;
    private ITimer? _timer;
    private IDisposable? _binding;

    // Owned by the loop.
    private readonly ReadIndexRounds _reads;
    // This node's own commands in its log and not yet applied, by index. Invariant: indexes strictly
    // increase (entries are handed out in index order, and an overwrite removes the suffix it
    // replaces before the new entries are added), so the applied ones leave from the front.
    private readonly RingList<(ulong Index, ulong RequestId)> _ownEntries = new();
    private readonly Queue<PendingConfChange> _confChanges = new();
    private readonly List<PendingTransfer> _transfers = [];
    private readonly Queue<SnapshotMetadata> _compactions = new();

    // The loop's copy of the waiting proposals for its scans (deadlines, a lost leadership), reused.
    private readonly List<(ulong RequestId, PendingProposal<TResult> Pending)> _proposalScan = [];

    // The loop's proposals of one turn, and what ProposeBatch hands the core from them: reused turn after turn.
    private readonly List<PendingProposal<TResult>> _proposalBatch = [];
    private readonly List<PendingProposal<TResult>> _proposedBatch = [];
    private readonly List<ReadOnlyMemory<byte>> _proposedCommands = [];

    // The applier's lists for one apply (one committed batch, or several merged), reused apply after apply (RaftNode.ApplyPipeline.cs).
    private readonly List<CommittedCommand> _applyCommands = [];
    private readonly List<(ulong Origin, ulong RequestId)> _applyOrigins = [];

    // Applier-owned, emptied after each apply: where each committed batch merged into the apply ends
    // in _applyCommands (exclusive), so that each is released on its own (ApplyCommittedAsync).
    private readonly List<int> _applyRunEnds = [];
    private readonly Dictionary<ulong, int> _unreachableReports = [];
    private long _tick;

    // Readies written and not yet reported durable, oldest first (the core's outstanding Readies),
    // each with the task that completes once it (and so every one before it) is durable.
    private readonly List<(Ready Ready, Task Durable)> _readiesInFlight = [];
    private ulong _lastKnownLeader;
    private StateRole _role;
    private ConfState _handedOutConf;
    private ulong _loopAppliedIndex;
    private bool _snapshotRequested;
    private int _rejectedMessages;
    private int _failedSends;

    // Frame copies borrowed from a TCP transport (its pool is this node's), returned by the loop once
    // nothing here reads them (ReceivedFrameLedger states the rule).
    private readonly ReceivedFrameLedger _lentFrames = new(new ReceivedFramePool());
    private readonly bool _returnFramesWhenStepped; // TestOnlyBrokenRules: tests only

    // Whether the transport should lend this node frames (Receiver.CanBorrowFrames): the core is a
    // follower, published by the loop at every turn's end (PublishFrameBorrowing) for the transport's
    // reading tasks. A hint only: the ledger decides by the core's role when frames arrive (Record)
    // and at every turn's end (ReturnLentFrames).
    private bool _borrowsFrames;

    // Owned by the apply pipeline.
    private readonly AppliedRequestWindow _dedup;
    private ulong _applierIndex;
    private ulong _applierTerm;
    private ConfState _applierConf;
    private ulong _entriesSinceSnapshot;
    private long _bytesSinceSnapshot;

    private RaftNode(
        RaftNodeOptions options,
        IStateMachine<TResult> stateMachine,
        IRaftTransport transport,
        DurableRaftLog log,
        RawNode raw,
        AppliedRequestWindow dedup,
        ulong appliedIndex,
        ulong appliedTerm,
        ulong firstRequestId)
    {
        _options = options;
        _acknowledgeBeforeFsync = options.Raft.BrokenRules.AcknowledgeBeforeFsync;
        _returnFramesWhenStepped = options.Raft.BrokenRules.ReturnReceivedFramesWhenStepped;
        _stateMachine = stateMachine;
        _durableStateMachine = stateMachine as IDurableStateMachine<TResult>;
        _transport = transport;
        _log = log;
        _raw = raw;
        _dedup = dedup;
        _scheduler = options.Scheduler ?? TaskScheduler.Default;
        _reads = new ReadIndexRounds(_scheduler, () => _inbox.TryPost(ReadsWaitingInput.Instance));
        _time = options.TimeProvider ?? TimeProvider.System;
        _logger = options.Logger ?? NullLogger.Instance;
        _proposalTimeoutTicks = options.ToTicks(options.ProposalTimeout);
        _readTimeoutTicks = options.ToTicks(options.ReadIndexTimeout);
        _readRetryTicks = options.ToTicks(options.ReadIndexRetryInterval);
        _summaryEveryTicks = Math.Max(100, 10L * options.Raft.ElectionTimeoutTicks);
        _nextRequestId = firstRequestId;
        _appliedIndex = appliedIndex;
        _loopAppliedIndex = appliedIndex;
        _applierIndex = appliedIndex;
        _applierTerm = appliedTerm;
        _persistedIndex = log.LastIndex();
        _snapshotIndex = log.NewestSnapshot?.Index ?? 0;
        _handedOutConf = log.InitialState().ConfState;
        _applierConf = _handedOutConf;
        _raftStatus = raw.GetStatus();
        _statusHardState = _raftStatus.HardState;
        _statusApplied = _raftStatus.Applied;
        _role = raw.SoftState.Role;
        _borrowsFrames = raw.SoftState.Role == StateRole.Follower;
        _leader = new LeaderChange(raw.SoftState.Lead, raw.HardState.Term, raw.SoftState.Lead == raw.Id);
        _lastKnownLeader = raw.SoftState.Lead;
        _metrics = new RaftNodeMetrics(options.NodeId, () => Volatile.Read(ref _appliedIndex));
        _raw.MaxOutstandingReadies = options.MaxReadiesInFlight;
    }

    /// <summary>Received frame copies this node gave back to its pool (<see cref="ReceivedFrameLedger"/>); for tests.</summary>
    internal long ReceivedFramesReturned => _lentFrames.ReturnedTotal;

    /// <summary>Arrays this node's transport rented from its frame pool that had been given back before (reused); for tests.</summary>
    internal long ReceivedFramesReused => _lentFrames.Pool.Reused;

    /// <summary>Arrays this node's transport rented from its frame pool in all (new or reused); for tests.</summary>
    internal long ReceivedFramesRented => _lentFrames.Pool.Rented;

    /// <summary>Applies queued to the apply pipeline and not yet done (the running one included); for tests.</summary>
    internal int QueuedApplies => Volatile.Read(ref _queuedApplies);

    /// <summary>This node's id.</summary>
    public ulong Id => _options.NodeId;

    /// <summary>Readies handed to the write pipeline since start (tests: how well writes coalesce).</summary>
    internal long ReadiesWritten => Interlocked.Read(ref _readiesWritten);

    /// <summary>
    /// For a test's failure message (a wait that ran out): what this node is waiting on now — its
    /// tick, whether its loop, write and apply pipelines still run, the Readies being written and
    /// whether the loop holds the next one back, the applies queued, and the proposals waiting for
    /// an outcome (the oldest <paramref name="maxProposals"/>, each with its deadline tick, 0 for
    /// none, and whether it was proposed as leader). Read from outside the loop without stopping
    /// it: a moment's approximation, never used to decide anything.
    /// </summary>
    internal string DescribeWaits(int maxProposals = 8)
    {
        var waiting = new List<(ulong RequestId, PendingProposal<TResult> Pending)>();
        _proposals.CopyTo(waiting);
        waiting.Sort((a, b) => a.RequestId.CompareTo(b.RequestId));
        var shown = waiting.Take(maxProposals).Select(p => $"#{p.RequestId} deadline {p.Pending.DeadlineTick}{(p.Pending.ProposedAsLeader ? " as leader" : string.Empty)}");
        static string Phase(Task task) => task.IsCompleted ? $"ended ({task.Status})" : "running";
        return $"tick {Interlocked.Read(ref _tick)}, loop {Phase(_loopTask)}, sync {Phase(_syncTask)}, apply {Phase(_applyTask)}, "
            + $"Readies being written {_readiesInFlight.Count}, holds back Readies {Volatile.Read(ref _loopHoldsBackReadies) == 1}, applies queued {Volatile.Read(ref _queuedApplies)}, "
            + $"proposals waiting {waiting.Count}{(waiting.Count > 0 ? ": " + string.Join(", ", shown) : string.Empty)}{(waiting.Count > maxProposals ? ", ..." : string.Empty)}";
    }


    /// <summary>
    /// The node's state now: the core's status (see <see cref="RaftNodeStatus.Raft"/> for how fresh
    /// each part is), applied and persisted indexes, and whether and why it stopped. Once a call of
    /// <see cref="ProposeAsync"/> on this node has returned, <c>Status.Raft.HardState.Commit</c> and
    /// <see cref="RaftNodeStatus.AppliedIndex"/> are at least its entry's index, ticks or not; on
    /// any member, once <see cref="RaftNodeStatus.AppliedIndex"/> has reached an index, so has the
    /// commit index.
    /// </summary>
    public RaftNodeStatus Status
    {
        get
        {
            lock (_stateLock)
            {
                var raft = _raftStatus;
                if (raft.HardState != _statusHardState || raft.Applied != _statusApplied)
                {
                    // Newer than the last full picture: the rest of it stays as of that tick.
                    raft = new RaftStatus
                    {
                        Id = raft.Id,
                        HardState = _statusHardState,
                        SoftState = raft.SoftState,
                        Applied = _statusApplied,
                        LeadTransferee = raft.LeadTransferee,
                        Config = raft.Config,
                        Progress = raft.Progress,
                    };
                }

                return new RaftNodeStatus(raft, Volatile.Read(ref _appliedIndex), Volatile.Read(ref _persistedIndex), _snapshotIndex, _stopped, _stopCause);
            }
        }
    }

    /// <summary>Loop only: takes the core's whole status for <see cref="Status"/> (allocates: on ticks and role or leader changes only).</summary>
    private void RefreshStatus()
    {
        var status = _raw.GetStatus();
        lock (_stateLock)
        {
            _raftStatus = status;
            _statusHardState = status.HardState;
            _statusApplied = status.Applied;
        }
    }

    /// <summary>
    /// Loop only: copies the core's hard state and applied index for <see cref="Status"/>, before the
    /// committed entries of the Ready that moved them can be applied and their callers answered.
    /// </summary>
    private void PublishCommitState()
    {
        var hardState = _raw.HardState;
        var applied = _raw.Core.Log.Applied;
        lock (_stateLock)
        {
            _statusHardState = hardState;
            _statusApplied = applied;
        }
    }

    /// <summary>
    /// Opens the log in <see cref="RaftNodeOptions.DataDirectory"/>, bootstraps it with
    /// <see cref="RaftNodeOptions.InitialVoters"/> when it is empty (or, when those are null, starts
    /// with no configuration and waits to be added), brings the state machine up to date — restoring
    /// the newest snapshot when <see cref="IStateMachine{TResult}.AppliedIndex"/> is below it, else
    /// replaying only the entries after its applied index — binds the transport and starts the loop.
    /// </summary>
    /// <exception cref="ArgumentException">The options break a rule (the message names them).</exception>
    /// <exception cref="InvalidOperationException">The state machine's applied index is beyond the log (it belongs to other data), or below a snapshot that carries no data (an <see cref="IDurableStateMachine{TResult}"/> whose files were lost or replaced).</exception>
    /// <exception cref="CorruptionException">The log or the snapshot is damaged (named by file and offset).</exception>
    /// <exception cref="StorageLockedException">Another process or node holds the data directory.</exception>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1000:Do not declare static members on generic types", Justification = "The factory of the node: RaftNode<TResult>.StartAsync names the result type once, as the contract of issue 13 fixes it.")]
    public static async ValueTask<RaftNode<TResult>> StartAsync(
        RaftNodeOptions options,
        IStateMachine<TResult> stateMachine,
        IRaftTransport transport,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(stateMachine);
        ArgumentNullException.ThrowIfNull(transport);
        options.Validate();

        var fileSystem = options.FileSystem ?? PhysicalFileSystem.Instance;
        var log = await DurableRaftLog.OpenAsync(fileSystem, options.DataDirectory, LogOptions(options), cancellationToken);
        try
        {
            if (log.IsEmpty && options.InitialVoters is { } voters)
            {
                await log.BootstrapAsync(new ConfState(voters), cancellationToken);
            }

            var dedup = new AppliedRequestWindow(options.DeduplicationWindow);
            var snapshot = log.NewestSnapshot;
            var snapshotIndex = snapshot?.Index ?? 0;
            var stateMachineIndex = stateMachine.AppliedIndex;
            var lastIndex = log.LastIndex();
            ulong applied;
            if (snapshot is not null && stateMachineIndex < snapshot.Index)
            {
                // The state machine is behind the newest snapshot (in memory, or it lost what it
                // had not made durable): restore it, with the deduplication window saved beside it.
                var data = await log.OpenSnapshotDataAsync(snapshot.Index, cancellationToken);
                await using (data)
                {
                    if (!await dedup.ReadHeaderAsync(data, $"snapshot {snapshot.Index}", cancellationToken))
                    {
                        // A metadata-only snapshot (IDurableStateMachine): the log was compacted
                        // only after the state machine's own files held this index, so they were
                        // lost or replaced since. Nothing here holds the data to restore.
                        throw new InvalidOperationException(
                            $"The state machine has applied up to index {stateMachineIndex}, below the snapshot at index {snapshot.Index} in '{options.DataDirectory}', which carries no data (the state machine's own files held it when the log was compacted): its files were lost or replaced. Start this member from an empty directory and let the cluster send it a snapshot.");
                    }

                    await stateMachine.RestoreAsync(snapshot.Index, data, cancellationToken);
                }

                applied = snapshot.Index;
            }
            else
            {
                if (stateMachineIndex > lastIndex)
                {
                    throw new InvalidOperationException(
                        $"The state machine has applied up to index {stateMachineIndex}, beyond the last entry of the log in '{options.DataDirectory}' ({lastIndex}): it belongs to other data, or the log lost synced writes.");
                }

                if (snapshot is not null)
                {
                    var data = await log.OpenSnapshotDataAsync(snapshot.Index, cancellationToken);
                    await using (data)
                    {
                        await dedup.ReadHeaderAsync(data, $"snapshot {snapshot.Index}", cancellationToken);
                    }
                }

                // The state machine is ahead of the snapshot: the window it would have seen is the
                // snapshot's plus the requests of the entries in between, replayed in order.
                applied = stateMachineIndex;
            }

            ulong maxOwnRequestId = 0;
            const ulong ChunkBytes = 4 * 1024 * 1024;
            for (var next = snapshotIndex + 1; next <= lastIndex;)
            {
                var chunk = log.Entries(next, lastIndex + 1, ChunkBytes);
                foreach (var e in chunk.Span)
                {
                    if (e.Type == EntryType.Normal && ProposalEnvelope.TryDecode(e.Data, out var origin, out var requestId, out _))
                    {
                        if (e.Index <= applied)
                        {
                            dedup.TryRecord(origin, requestId);
                        }

                        if (origin == options.NodeId)
                        {
                            maxOwnRequestId = Math.Max(maxOwnRequestId, requestId);
                        }
                    }
                }

                next += (ulong)chunk.Length;
            }

            log.SetAppliedIndex(applied);
            // Always explicit: the log may retain entries below its snapshot (for slow followers),
            // and the core must hand out only those after what the state machine holds.
            var raftOptions = options.Raft with { Id = options.NodeId, AppliedIndex = applied };
            var raw = new RawNode(raftOptions, log);
            var appliedTerm = applied == 0 ? 0 : log.Term(applied);

            // Request ids must never repeat for this origin, across restarts too (a copy of an old
            // request still in flight would be taken for a duplicate of a new one): start above the
            // clock in 100 ns units — which no node reaches at any proposal rate — and above every
            // id of ours the log still holds.
            var time = options.TimeProvider ?? TimeProvider.System;
            var clockBase = (ulong)Math.Max(0, time.GetUtcNow().UtcTicks);
            var firstRequestId = Math.Max(clockBase, Math.Max(maxOwnRequestId, dedup.MaxRequestId(options.NodeId))) + 1;

            var node = new RaftNode<TResult>(options, stateMachine, transport, log, raw, dedup, applied, appliedTerm, firstRequestId);
            node.Start();
            return node;
        }
        catch
        {
            await log.DisposeAsync();
            throw;
        }
    }

    // The log's options, with the node's id, clock and logger where the caller left the log's unset.
    private static DurableRaftLogOptions LogOptions(RaftNodeOptions options)
    {
        var log = options.Log ?? DurableRaftLogOptions.Default;
        if (log.MetricsNodeId == 0)
        {
            log = log with { MetricsNodeId = options.NodeId };
        }

        if (options.TimeProvider is { } time && ReferenceEquals(log.TimeProvider, TimeProvider.System))
        {
            log = log with { TimeProvider = time };
        }

        if (options.Logger is { } logger && ReferenceEquals(log.Logger, NullLogger.Instance))
        {
            log = log with { Logger = logger };
        }

        return log;
    }

    /// <summary>
    /// Replicates <paramref name="command"/> and returns the state machine's result once it is
    /// applied on this node. On a follower the command is forwarded to the leader; the result comes
    /// back when this node applies the entry. Every command is applied exactly once on every node,
    /// even if the network delivers the forwarded proposal twice.
    /// </summary>
    /// <remarks>
    /// Concurrent calls are batched: everything queued when the loop takes its next turn goes to
    /// the core as one proposal. <b>Cancellation</b> before the command reaches the core withdraws
    /// it (it will never apply); after, it only stops the wait — the command may still apply.
    /// <b>Continuations</b>: the callers whose commands one applied batch answered are released
    /// together, their continuations run one after another on one thread of the node's scheduler
    /// (the thread pool by default; never the node's loop or applier), without a thread hop each;
    /// on the thread pool a batch of 128 callers or more is shared by up to one thread per core
    /// (one per 64 callers). A continuation that blocks (a synchronous wait, even on another caller of the same batch) holds
    /// up the callers after it for at most about one <see cref="RaftNodeOptions.TickInterval"/>: the
    /// loop then hands the rest of the batch to another work item. Failures and cancellations are
    /// completed on the scheduler too. <b>Await the returned task once</b> (or call
    /// <see cref="ValueTask{TResult}.AsTask"/> once): a call without a cancellation token is reused
    /// for a later call once its result is taken, so a second await of it throws
    /// <see cref="InvalidOperationException"/>.
    /// </remarks>
    /// <exception cref="NoLeaderException">No leader is known; nothing was appended.</exception>
    /// <exception cref="ProposalDroppedException">
    /// Refused by the leader or the core (the reason says why: nothing was appended); overwritten by
    /// a new leader (<see cref="ProposalDropReason.Overwritten"/>); or unanswered within
    /// <see cref="RaftNodeOptions.ProposalTimeout"/> after it left this node
    /// (<see cref="ProposalDropReason.TimedOut"/>: the outcome is unknown).
    /// </exception>
    /// <exception cref="NodeStoppedException">The node stopped (disposed, or failed: see the cause).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public ValueTask<TResult> ProposeAsync(ReadOnlyMemory<byte> command, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<TResult>(cancellationToken);
        }

        var requestId = Interlocked.Increment(ref _nextRequestId);
        // Pooled unless cancellable (PendingProposal's remarks): the returned ValueTask is awaited once.
        var pending = PendingProposal<TResult>.Rent(requestId, ProposalEnvelope.Encode(Id, requestId, command.Span), _scheduler, cancellationToken.CanBeCanceled);
        var version = pending.Version;
        _proposals.Add(pending);
        if (cancellationToken.CanBeCanceled)
        {
            RegisterCancellation(pending, cancellationToken);
        }

        if (!_inbox.TryPost(LoopItem.Propose(pending)))
        {
            _proposals.TryRemove(requestId, out _);
            pending.Fail(Stopped());
        }

        return new ValueTask<TResult>(pending, version);
    }

    // Its own method: a lambda capturing ProposeAsync's locals would make every call allocate
    // their closure, cancellable or not.
    private void RegisterCancellation(PendingProposal<TResult> pending, CancellationToken cancellationToken) =>
        pending.Registration = cancellationToken.Register(() => OnProposalCancelled(pending, cancellationToken));

    /// <summary>
    /// A linearizable read barrier: returns once this node's state machine has applied everything
    /// committed when the call was made, as confirmed by the leader (Raft thesis §6.4); a read of
    /// the state machine after it sees every write acknowledged before the call. Works on followers
    /// and learners.
    /// </summary>
    /// <remarks>
    /// Concurrent callers share one round trip: every call made before a round starts waits for
    /// that round, a call made while one runs waits for the next (etcd's linearizable read loop).
    /// They also share one completion: the continuations of the callers a round releases run one
    /// after another on one thread of the node's scheduler (the thread pool by default; never the
    /// node's loop), without a thread hop each, so a continuation that blocks holds up the readers
    /// released after it: hop off (<c>await Task.Yield()</c>) before long or blocking work.
    /// </remarks>
    /// <exception cref="NoLeaderException">No leader confirmed a read point within <see cref="RaftNodeOptions.ReadIndexTimeout"/> and none is known.</exception>
    /// <exception cref="TimeoutException">A leader is known but did not confirm a read point within <see cref="RaftNodeOptions.ReadIndexTimeout"/> (retried every <see cref="RaftNodeOptions.ReadIndexRetryInterval"/>).</exception>
    /// <exception cref="NodeStoppedException">The node stopped.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public ValueTask ReadIndexAsync(CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        if (!_reads.TryJoin(_readTimeoutTicks, out var task, out var wakeLoop))
        {
            // The node stopped (the task carries its NodeStoppedException).
            return new ValueTask(task);
        }

        if (wakeLoop)
        {
            // A post that fails means the loop is stopping: its last act fails every waiting group.
            _ = _inbox.TryPost(ReadsWaitingInput.Instance);
        }

        // The group's task is shared: a cancellable caller waits on its own view of it.
        return new ValueTask(cancellationToken.CanBeCanceled ? task.WaitAsync(cancellationToken) : task);
    }

    /// <summary>Adds <paramref name="id"/> as a voter; completes with the new configuration once the change is applied here. See <see cref="ChangeMembershipAsync"/>.</summary>
    public ValueTask<ConfState> AddVoterAsync(ulong id, CancellationToken cancellationToken = default) =>
        ChangeMembershipAsync(ConfChange.AddVoter(id), cancellationToken);

    /// <summary>Adds <paramref name="id"/> as a learner (receives the log, does not vote). See <see cref="ChangeMembershipAsync"/>.</summary>
    public ValueTask<ConfState> AddLearnerAsync(ulong id, CancellationToken cancellationToken = default) =>
        ChangeMembershipAsync(ConfChange.AddLearner(id), cancellationToken);

    /// <summary>Turns learner <paramref name="id"/> into a voter. See <see cref="ChangeMembershipAsync"/>.</summary>
    public ValueTask<ConfState> PromoteLearnerAsync(ulong id, CancellationToken cancellationToken = default) =>
        ChangeMembershipAsync(ConfChange.Promote(id), cancellationToken);

    /// <summary>Removes voter or learner <paramref name="id"/> for good (its id is never reused). See <see cref="ChangeMembershipAsync"/>.</summary>
    public ValueTask<ConfState> RemoveMemberAsync(ulong id, CancellationToken cancellationToken = default) =>
        ChangeMembershipAsync(ConfChange.Remove(id), cancellationToken);

    /// <summary>
    /// Proposes a configuration change — several changes at once go through a joint configuration
    /// (Raft thesis §4.3), left automatically unless <see cref="ConfChangeTransition.JointExplicit"/> —
    /// and completes with the configuration as of the change once it is applied on this node (for a
    /// joint change: the joint configuration). Calls on one node are proposed one after another.
    /// </summary>
    /// <exception cref="ConfChangeRejectedException">The change is invalid, or another one is still pending in the cluster.</exception>
    /// <exception cref="NoLeaderException">No leader is known.</exception>
    /// <exception cref="ProposalDroppedException">Refused, or unanswered within <see cref="RaftNodeOptions.ProposalTimeout"/> after it left this node (<see cref="ProposalDropReason.TimedOut"/>).</exception>
    /// <exception cref="NodeStoppedException">The node stopped.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the change may still apply.</exception>
    public ValueTask<ConfState> ChangeMembershipAsync(ConfChange change, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(change);
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<ConfState>(cancellationToken);
        }

        var pending = new PendingConfChange(change);
        if (cancellationToken.CanBeCanceled)
        {
            pending.Registration = cancellationToken.Register(() => pending.Completion.TrySetCanceled(cancellationToken));
        }

        if (!_inbox.TryPost(new ConfChangeInput(pending)))
        {
            pending.Completion.TrySetException(Stopped());
        }

        return new ValueTask<ConfState>(pending.Completion.Task);
    }

    /// <summary>
    /// Hands leadership to voter <paramref name="target"/> (Raft thesis §3.10) and completes once
    /// this node sees it lead. Proposals are refused while the transfer runs.
    /// </summary>
    /// <exception cref="TimeoutException"><paramref name="target"/> did not become leader within <see cref="RaftNodeOptions.ProposalTimeout"/> (not a voter, unreachable, or the transfer was abandoned).</exception>
    /// <exception cref="NodeStoppedException">The node stopped.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the transfer may still happen.</exception>
    public ValueTask TransferLeadershipAsync(ulong target, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfZero(target);
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        var pending = new PendingTransfer(target);
        if (cancellationToken.CanBeCanceled)
        {
            pending.Registration = cancellationToken.Register(() => pending.Completion.TrySetCanceled(cancellationToken));
        }

        if (!_inbox.TryPost(new TransferInput(pending)))
        {
            pending.Completion.TrySetException(Stopped());
        }

        return new ValueTask(pending.Completion.Task);
    }

    /// <summary>
    /// The leader as this node sees it: the current value first, then every change, until the node
    /// is disposed (the stream ends) or fails (the stream throws <see cref="NodeStoppedException"/>)
    /// or <paramref name="cancellationToken"/> is cancelled. Each enumeration is independent; a slow
    /// reader misses nothing (its changes queue up).
    /// </summary>
    public async IAsyncEnumerable<LeaderChange> LeaderChanges([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var channel = Channel.CreateUnbounded<LeaderChange>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = false });
        lock (_stateLock)
        {
            channel.Writer.TryWrite(_leader);
            if (_stopped)
            {
                channel.Writer.TryComplete(_stopCause is null ? null : Stopped());
            }
            else
            {
                _leaderSubscribers.Add(channel);
            }
        }

        try
        {
            // Not ReadAllAsync: it awaits with ConfigureAwait(false), so on a deterministic scheduler
            // (RaftNodeOptions.Scheduler) the reader would resume on the thread pool and hand each
            // change to its consumer at a time the scheduler does not decide.
            while (await channel.Reader.WaitToReadAsync(cancellationToken))
            {
                while (channel.Reader.TryRead(out var change))
                {
                    yield return change;
                }
            }
        }
        finally
        {
            lock (_stateLock)
            {
                _leaderSubscribers.Remove(channel);
            }
        }
    }

    /// <summary>
    /// Stops the node: fails every pending call with <see cref="NodeStoppedException"/>, waits for
    /// the loop, the apply pipeline and background snapshot work to end, unbinds the transport and
    /// closes the log (no task left running, no file left open). Idempotent.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        Stop(null);
        if (_timer is not null)
        {
            await _timer.DisposeAsync();
        }

        _binding?.Dispose();
        await AwaitQuietly(_loopTask);
        await AwaitQuietly(_syncTask);
        await AwaitQuietly(_applyTask);
        Task[] background;
        lock (_stateLock)
        {
            background = [.. _background];
        }

        foreach (var task in background)
        {
            await AwaitQuietly(task);
        }

        FailAllProposals();
        await _log.DisposeAsync();
        _metrics.Dispose();
        _stopping.Dispose();
    }

    private static async Task AwaitQuietly(Task task)
    {
        try
        {
            await task;
        }
        catch (Exception)
        {
            // Already recorded as the stop cause (or a cancellation caused by the stop).
        }
    }

    private void Start()
    {
        _binding = _transport.Bind(Id, new Receiver(this));
        _syncTask = Run(RunSyncAsync);
        _loopTask = Run(RunLoopAsync);
        _applyTask = Run(RunApplyAsync);
        _timer = _time.CreateTimer(static state => ((NodeInbox<LoopItem>)state!).PostTick(), _inbox, _options.TickInterval, _options.TickInterval);
        RaftNodeLog.Started(_logger, Id, _loopAppliedIndex, _persistedIndex, _raw.HardState.Term, _handedOutConf);
    }

    // Starts work on the node's scheduler: never Task.Run, so a single-threaded scheduler runs it all.
    private Task Run(Func<Task> work) =>
        Task.Factory.StartNew(work, CancellationToken.None, TaskCreationOptions.DenyChildAttach, _scheduler).Unwrap();

    private void RunInBackground(Func<Task> work)
    {
        var task = Run(work);
        lock (_stateLock)
        {
            _background.RemoveAll(t => t.IsCompleted);
            _background.Add(task);
        }
    }

    private NodeStoppedException Stopped()
    {
        lock (_stateLock)
        {
            return new NodeStoppedException(Id, _stopCause);
        }
    }

    /// <summary>Stops for good (first call wins): records the cause, fails the callers it can reach, wakes the consumers so they exit.</summary>
    private void Stop(Exception? cause)
    {
        Channel<LeaderChange>[] subscribers;
        TaskCompletionSource[] snapshotWaiters;
        lock (_stateLock)
        {
            if (_stopped)
            {
                return;
            }

            _stopped = true;
            _stopCause = cause;
            subscribers = [.. _leaderSubscribers];
            _leaderSubscribers.Clear();
            snapshotWaiters = [.. _snapshotWaiters.Select(w => w.Signal)];
            _snapshotWaiters.Clear();
        }

        if (cause is not null)
        {
            RaftNodeLog.StoppedForGood(_logger, cause, Id, cause.Message);
        }

        _inbox.Close();
        Volatile.Read(ref _pendingLastCall)?.TrySetResult(false);
        _applyQueue.Close();
        _syncQueue.Close();
        try
        {
            _stopping.Cancel();
        }
        catch (AggregateException e)
        {
            RaftNodeLog.CancelCallbackFailed(_logger, e, Id);
        }

        foreach (var s in subscribers)
        {
            s.Writer.TryComplete(cause is null ? null : Stopped());
        }

        // After _stopped is set no waiter is added (WaitForSnapshotAsync fails at once), so these are all.
        foreach (var waiter in snapshotWaiters)
        {
            waiter.TrySetException(Stopped());
        }

        FailAllProposals();
    }

    private void FailAllProposals()
    {
        // Any thread (the stop, the disposal): its own copy, not the loop's scan list.
        var waiting = new List<(ulong RequestId, PendingProposal<TResult> Pending)>();
        _proposals.CopyTo(waiting);
        foreach (var (requestId, _) in waiting)
        {
            if (_proposals.TryRemove(requestId, out var pending))
            {
                pending.Fail(Stopped());
                _metrics.ProposalFailed();
            }
        }
    }

    /// <summary>
    /// The node's side of the transport: everything inbound is queued to the loop, never handled on
    /// the transport's thread. It borrows a TCP transport's frame copies (<see cref="IReceivedFrameBorrower"/>):
    /// the loop gives each back once nothing of this node reads it.
    /// </summary>
    private sealed class Receiver(RaftNode<TResult> node) : IReceivedFrameBorrower
    {
        public ReceivedFramePool FramePool => node._lentFrames.Pool;

        // Only a follower gives lent frames back (ReceivedFrameLedger); the loop publishes its role.
        public bool CanBorrowFrames => Volatile.Read(ref node._borrowsFrames);

        public void ReceiveBatch(ReadOnlySpan<Message> messages) => ReceiveBatch(messages, default);

        public void Receive(Message message)
        {
            ArgumentNullException.ThrowIfNull(message);
            node._inbox.TryPost(LoopItem.Step(message));
        }

        // A transport's batch (a TCP frame's messages) is one inbox item: one lock and at most one
        // wake-up of the loop for the whole batch, not one per message. Lent frames travel in the
        // same item, so they are recorded only after their messages were stepped.
        public void ReceiveBatch(ReadOnlySpan<Message> messages, ReadOnlySpan<LentFrame> frames)
        {
            if (messages.Length == 1 && frames.IsEmpty)
            {
                Receive(messages[0]);
            }
            else if (messages.Length > 0)
            {
                foreach (var message in messages)
                {
                    // Checked here, on the transport's thread: a null stepped by the loop would stop the node.
                    ArgumentNullException.ThrowIfNull(message, nameof(messages));
                }

                node._inbox.TryPost(new StepBatchInput(messages.ToArray(), frames.IsEmpty ? null : frames.ToArray()));
            }
        }

        public ValueTask ReceiveSnapshotAsync(Message snapshotMessage, Stream data, CancellationToken cancellationToken) =>
            node.ReceiveSnapshotAsync(snapshotMessage, data, cancellationToken);

        public void ReportUnreachable(ulong peerId) => node._inbox.TryPost(new UnreachableInput(peerId));
    }
}
