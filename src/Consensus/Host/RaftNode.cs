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
/// <see cref="Ready.Messages"/> at once (a leader replicates while its own disk write runs),
/// starts one <see cref="DurableRaftLog.SaveAsync"/> and keeps stepping messages and proposals
/// meanwhile, sending at once what they produce that needs no persistence (appends, heartbeats); when the
/// write is done it sends <see cref="Ready.MessagesAfterPersist"/> (acknowledgements and votes) and
/// advances. Committed entries go to a separate apply pipeline, so applying one Ready overlaps
/// persisting the next; entries not yet durable here wait for their write first.</para>
/// <para><b>Thread-safety.</b> Every public member may be called from any thread, concurrently.</para>
/// <para><b>Failure.</b> A failed write or fsync of the log, an exception from the state machine or a
/// broken invariant stops the node for good (fail-stop: an fsync is never retried, the kernel may
/// have dropped the dirty pages); every pending and later call fails with
/// <see cref="NodeStoppedException"/> whose <see cref="NodeStoppedException.Cause"/> is the failure,
/// and <see cref="Status"/> shows it. Dispose it and start a new node from the disk.</para>
/// </remarks>
/// <typeparam name="TResult">What the state machine returns for one command.</typeparam>
public sealed class RaftNode<TResult> : IAsyncDisposable
{
    // The loop stops taking Readies while this many applies are queued: a state machine slower
    // than the log then slows replication instead of filling memory.
    private const int MaxQueuedApplies = 64;

    private readonly RaftNodeOptions _options;
    private readonly IStateMachine<TResult> _stateMachine;
    private readonly IRaftTransport _transport;
    private readonly DurableRaftLog _log;
    private readonly RawNode _raw;
    private readonly TaskScheduler _scheduler;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly RaftNodeMetrics _metrics;
    private readonly NodeInbox<LoopInput> _inbox = new();
    private readonly NodeInbox<ApplyWork> _applyQueue = new();
    private readonly ConcurrentDictionary<ulong, PendingProposal<TResult>> _proposals = new();
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
    private volatile RaftStatus _raftStatus;
    private LeaderChange _leader;
    private bool _stopped;
    private Exception? _stopCause;
    private int _disposed;
    private int _queuedApplies;
    private int _snapshotInProgress;
    private Task _loopTask = Task.CompletedTask;
    private Task _applyTask = Task.CompletedTask;
    private ITimer? _timer;
    private IDisposable? _binding;

    // Owned by the loop.
    private readonly ReadIndexRounds _reads = new();
    private readonly SortedDictionary<ulong, ulong> _ownEntriesByIndex = [];
    private ulong _maxOwnEntryIndex; // at least the largest key of _ownEntriesByIndex (a cheap bound: SortedDictionary has no O(1) max)
    private readonly Queue<PendingConfChange> _confChanges = new();
    private readonly List<PendingTransfer> _transfers = [];
    private readonly Queue<SnapshotMetadata> _compactions = new();
    private readonly Dictionary<ulong, int> _unreachableReports = [];
    private long _tick;
    private Task? _persistInFlight;
    private ulong _lastKnownLeader;
    private StateRole _role;
    private ConfState _handedOutConf;
    private ulong _loopAppliedIndex;
    private bool _snapshotRequested;
    private int _rejectedMessages;
    private int _failedSends;

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
        _stateMachine = stateMachine;
        _transport = transport;
        _log = log;
        _raw = raw;
        _dedup = dedup;
        _scheduler = options.Scheduler ?? TaskScheduler.Default;
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
        _role = raw.SoftState.Role;
        _leader = new LeaderChange(raw.SoftState.Lead, raw.HardState.Term, raw.SoftState.Lead == raw.Id);
        _lastKnownLeader = raw.SoftState.Lead;
        _metrics = new RaftNodeMetrics(options.NodeId, () => Volatile.Read(ref _appliedIndex));
    }

    /// <summary>This node's id.</summary>
    public ulong Id => _options.NodeId;

    /// <summary>
    /// The node's state now: the core's status (refreshed every tick), applied and persisted
    /// indexes, and whether and why it stopped.
    /// </summary>
    public RaftNodeStatus Status
    {
        get
        {
            lock (_stateLock)
            {
                return new RaftNodeStatus(_raftStatus, Volatile.Read(ref _appliedIndex), Volatile.Read(ref _persistedIndex), _snapshotIndex, _stopped, _stopCause);
            }
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
    /// <exception cref="InvalidOperationException">The state machine's applied index is beyond the log (it belongs to other data).</exception>
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
                    await dedup.ReadHeaderAsync(data, $"snapshot {snapshot.Index}", cancellationToken);
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
        var pending = new PendingProposal<TResult>(requestId, ProposalEnvelope.Encode(Id, requestId, command.Span));
        _proposals[requestId] = pending;
        if (cancellationToken.CanBeCanceled)
        {
            pending.Registration = cancellationToken.Register(() => OnProposalCancelled(pending, cancellationToken));
        }

        if (!_inbox.TryPost(new ProposeInput(pending)))
        {
            _proposals.TryRemove(requestId, out _);
            pending.Fail(Stopped());
        }

        return new ValueTask<TResult>(pending.Task);
    }

    /// <summary>
    /// A linearizable read barrier: returns once this node's state machine has applied everything
    /// committed when the call was made, as confirmed by the leader (Raft thesis §6.4); a read of
    /// the state machine after it sees every write acknowledged before the call. Concurrent callers
    /// share one round trip. Works on followers and learners.
    /// </summary>
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

        var waiter = new ReadWaiter(0);
        if (cancellationToken.CanBeCanceled)
        {
            waiter.Registration = cancellationToken.Register(() => waiter.Cancel(cancellationToken));
        }

        if (!_inbox.TryPost(new ReadInput(waiter)))
        {
            waiter.Fail(Stopped());
        }

        return new ValueTask(waiter.Task);
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
            await foreach (var change in channel.Reader.ReadAllAsync(cancellationToken))
            {
                yield return change;
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
        _loopTask = Run(RunLoopAsync);
        _applyTask = Run(RunApplyAsync);
        _timer = _time.CreateTimer(static state => ((NodeInbox<LoopInput>)state!).PostTick(), _inbox, _options.TickInterval, _options.TickInterval);
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
        }

        if (cause is not null)
        {
            RaftNodeLog.StoppedForGood(_logger, cause, Id, cause.Message);
        }

        _inbox.Close();
        _applyQueue.Close();
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

        FailAllProposals();
    }

    private void FailAllProposals()
    {
        foreach (var (id, pending) in _proposals)
        {
            if (_proposals.TryRemove(id, out _))
            {
                pending.Fail(Stopped());
                _metrics.ProposalFailed();
            }
        }
    }

    private void OnProposalCancelled(PendingProposal<TResult> pending, CancellationToken token)
    {
        // Withdrawn before the loop proposed it: it never reaches the log. After: the entry may
        // still be applied; only the wait ends.
        pending.TryWithdraw();
        _proposals.TryRemove(pending.RequestId, out _);
        pending.Cancel(token);
    }

    private void FailProposal(PendingProposal<TResult> pending, Exception error)
    {
        if (_proposals.TryRemove(pending.RequestId, out _))
        {
            pending.Fail(error);
            _metrics.ProposalFailed();
        }
    }

    private NoLeaderException NoLeader() => new NoLeaderException(Id, _lastKnownLeader);

    // A refusal for our caller: the core's exception, or NoLeaderException when that is why.
    private Exception Refusal(Exception refusal) => refusal switch
    {
        ProposalDroppedException { Reason: ProposalDropReason.NoLeader } => NoLeader(),
        ProposalDroppedException dropped => new ProposalDroppedException(dropped.Reason),
        _ => refusal,
    };

    // ---------------------------------------------------------------------------------------
    // The loop
    // ---------------------------------------------------------------------------------------

    private async Task RunLoopAsync()
    {
        Exception? failure = null;
        try
        {
            while (true)
            {
                var (inputs, ticks, closed) = await _inbox.TakeAsync();
                if (closed)
                {
                    break;
                }

                for (var i = 0; i < ticks; i++)
                {
                    _raw.Tick();
                    _tick++;
                    OnTick();
                }

                List<PendingProposal<TResult>>? batch = null;
                foreach (var input in inputs)
                {
                    switch (input)
                    {
                        case ProposeInput p:
                            (batch ??= []).Add(p.Pending);
                            break;
                        case StepInput s:
                            Step(s.Message);
                            break;
                        case PersistedInput persisted:
                            OnPersisted(persisted);
                            break;
                        case AppliedInput applied:
                            // The applier has taken every request posted before this (one take each):
                            // a peer still needing a snapshot may ask again.
                            _snapshotRequested = false;
                            OnApplied(applied.Index);
                            break;
                        case ReadInput r:
                            r.Waiter.DeadlineTick = _tick + _readTimeoutTicks;
                            _reads.Add(r.Waiter);
                            break;
                        case ConfChangeInput c:
                            _confChanges.Enqueue(c.Pending);
                            break;
                        case TransferInput t:
                            StartTransfer(t.Pending);
                            break;
                        case SnapshotSentInput sent:
                            _raw.ReportSnapshot(sent.To, sent.Succeeded);
                            break;
                        case SnapshotSavedInput saved:
                            _compactions.Enqueue(saved.Metadata);
                            break;
                        case UnreachableInput u:
                            _raw.ReportUnreachable(u.PeerId);
                            _unreachableReports[u.PeerId] = _unreachableReports.GetValueOrDefault(u.PeerId) + 1;
                            break;
                        case FailInput f:
                            throw f.Error;
                        default:
                            throw new InvariantViolationException($"Unknown loop input {input.GetType().Name}.");
                    }
                }

                if (batch is not null)
                {
                    ProposeBatch(batch);
                }

                ProposeNextConfChange();
                if (_reads.TryStartRound(Interlocked.Increment(ref _nextRequestId), _tick) is { } context)
                {
                    _raw.ReadIndex(context);
                }

                await DriveReadiesAsync();
                if (_persistInFlight is not null)
                {
                    // Appends, heartbeats and forwards produced during the write need no
                    // persistence: out now, not after the write (a leader replicates what was
                    // proposed during its own fsync; followers persist it in their next write).
                    Send(_raw.TakeMessagesBeforePersist());
                }
            }
        }
        catch (Exception e)
        {
            failure = e;
        }

        Stop(failure);
        if (_persistInFlight is { } persist)
        {
            await AwaitQuietly(persist);
        }

        var stopped = Stopped();
        _reads.FailAll(stopped);
        foreach (var c in _confChanges)
        {
            c.Completion.TrySetException(Stopped());
        }

        foreach (var t in _transfers)
        {
            t.Completion.TrySetException(Stopped());
        }

        FailAllProposals();
    }

    private void Step(Message message)
    {
        try
        {
            _raw.Step(message);
        }
        catch (MessageRejectedException e)
        {
            // A peer's (or a stale) message the core will not take; summarised, not fatal.
            _rejectedMessages++;
            RaftNodeLog.Rejected(_logger, e, Id, message);
        }
    }

    private void Send(IReadOnlyList<Message> messages)
    {
        foreach (var m in messages)
        {
            if (m.Type == MessageType.Snapshot)
            {
                RunInBackground(() => SendSnapshotAsync(m));
                continue;
            }

            try
            {
                _transport.Send(m);
            }
            catch (Exception e) when (e is not InvariantViolationException)
            {
                // Raft tolerates loss; a transport that throws only loses this message.
                _failedSends++;
                RaftNodeLog.SendFailed(_logger, e, Id, m);
            }
        }
    }

    private void ProposeBatch(List<PendingProposal<TResult>> batch)
    {
        var commands = new List<ReadOnlyMemory<byte>>(batch.Count);
        var proposed = new List<PendingProposal<TResult>>(batch.Count);
        foreach (var p in batch)
        {
            if (p.TryMarkProposed())
            {
                commands.Add(p.Envelope);
                proposed.Add(p);
            }
        }

        if (commands.Count == 0)
        {
            return;
        }

        var isLeader = _raw.SoftState.Role == StateRole.Leader;
        try
        {
            _raw.ProposeBatch(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(commands));
        }
        catch (ProposalDroppedException e)
        {
            foreach (var p in proposed)
            {
                FailProposal(p, Refusal(e));
            }

            return;
        }

        _metrics.Proposed(commands.Count);
        foreach (var p in proposed)
        {
            p.ProposedAsLeader = isLeader;
            if (!isLeader)
            {
                p.DeadlineTick = _tick + _proposalTimeoutTicks;
            }
        }
    }

    private void ProposeNextConfChange()
    {
        while (_confChanges.TryPeek(out var head))
        {
            if (head.Completion.Task.IsCompleted)
            {
                _confChanges.Dequeue();
                head.Registration.Dispose();
                continue;
            }

            if (head.Proposed)
            {
                return;
            }

            try
            {
                _raw.ProposeConfChange(head.Change);
                head.Proposed = true;
                if (_raw.SoftState.Role != StateRole.Leader)
                {
                    head.DeadlineTick = _tick + _proposalTimeoutTicks;
                }

                return;
            }
            catch (ProposalDroppedException e)
            {
                head.Completion.TrySetException(Refusal(e));
            }
            catch (ConfChangeRejectedException e)
            {
                head.Completion.TrySetException(e);
            }
        }
    }

    private void StartTransfer(PendingTransfer transfer)
    {
        if (_raw.SoftState.Lead == transfer.Target)
        {
            transfer.Completion.TrySetResult();
            return;
        }

        transfer.DeadlineTick = _tick + _proposalTimeoutTicks;
        _transfers.Add(transfer);
        _raw.TransferLeadership(transfer.Target);
    }

    private void OnTick()
    {
        foreach (var pending in _proposals.Values)
        {
            if (pending.DeadlineTick != 0 && _tick >= pending.DeadlineTick)
            {
                FailProposal(pending, new ProposalDroppedException(ProposalDropReason.TimedOut));
            }
        }

        if (_reads.RetryIfDue(Interlocked.Increment(ref _nextRequestId), _tick, _readRetryTicks) is { } context)
        {
            _raw.ReadIndex(context);
        }

        _reads.Expire(_tick, () => _raw.SoftState.Lead == 0
            ? NoLeader()
            : new TimeoutException($"Node {Id}: leader {_raw.SoftState.Lead} did not confirm a read index within {_options.ReadIndexTimeout}."));

        if (_confChanges.TryPeek(out var change) && change.Proposed && change.DeadlineTick != 0 && _tick >= change.DeadlineTick)
        {
            change.Completion.TrySetException(new ProposalDroppedException(ProposalDropReason.TimedOut));
        }

        _transfers.RemoveAll(t =>
        {
            if (t.Completion.Task.IsCompleted)
            {
                return true;
            }

            if (_tick >= t.DeadlineTick)
            {
                t.Completion.TrySetException(new TimeoutException(
                    $"Node {Id}: leadership did not pass to {t.Target} within {_options.ProposalTimeout} (the leader is {_raw.SoftState.Lead})."));
                return true;
            }

            return false;
        });

        _raftStatus = _raw.GetStatus();
        if (_tick % _summaryEveryTicks == 0)
        {
            LogDropSummary();
        }
    }

    private void LogDropSummary()
    {
        if (_rejectedMessages == 0 && _failedSends == 0 && _unreachableReports.Count == 0)
        {
            return;
        }

        if (_logger.IsEnabled(LogLevel.Information))
        {
            var unreachable = string.Join(", ", _unreachableReports.Select(p => $"{p.Key}: {p.Value}"));
            RaftNodeLog.DropSummary(_logger, Id, _summaryEveryTicks, _rejectedMessages, _failedSends, unreachable);
        }

        _rejectedMessages = 0;
        _failedSends = 0;
        _unreachableReports.Clear();
    }

    private async Task DriveReadiesAsync()
    {
        while (true)
        {
            // Compaction writes the WAL too: only between two Ready writes (the log's writes are
            // made one at a time).
            while (_persistInFlight is null && _compactions.TryDequeue(out var compaction))
            {
                if (compaction.Index <= Volatile.Read(ref _snapshotIndex))
                {
                    // A leader's newer snapshot was installed while ours was being written: ours
                    // covers nothing the log still holds.
                    continue;
                }

                await _log.CompactAsync(compaction);
                OnSnapshotInstalled(compaction.Index);
                RaftNodeLog.Compacted(_logger, Id, compaction.Index, compaction.Term);
            }

            if (_persistInFlight is not null || Volatile.Read(ref _queuedApplies) >= MaxQueuedApplies || !_raw.HasReady())
            {
                return;
            }

            var rd = _raw.GetReady();
            OnSoftState(rd.SoftState);
            foreach (var rs in rd.ReadStates)
            {
                _reads.OnReadState(rs);
            }

            _reads.CompleteUpTo(_loopAppliedIndex);
            foreach (var refused in rd.RefusedProposals)
            {
                OnRefused(refused);
            }

            if (rd.PeersNeedingSnapshot.Count > 0 && !_snapshotRequested)
            {
                _snapshotRequested = true;
                EnqueueApply(new SnapshotRequest(Force: true));
            }

            Send(rd.Messages);
            TrackOwnEntries(rd.Entries.Span);

            var mustPersist = rd.Snapshot is not null || rd.HardState is not null || !rd.Entries.IsEmpty;
            var persist = mustPersist ? PersistAsync(rd) : Task.CompletedTask;
            if (rd.Snapshot is { } snapshot)
            {
                _handedOutConf = snapshot.ConfState;
                EnqueueApply(new RestoreWork(snapshot, persist));
                RaftNodeLog.InstallingSnapshot(_logger, Id, snapshot.Index, snapshot.Term);
            }

            if (!rd.CommittedEntries.IsEmpty)
            {
                EnqueueCommitted(rd.CommittedEntries, persist);
            }

            if (!mustPersist)
            {
                Send(rd.MessagesAfterPersist);
                _raw.Advance();
                continue;
            }

            _persistInFlight = persist;
            if (!rd.Entries.IsEmpty)
            {
                _metrics.ReadyPersisted(rd.Entries.Length);
            }

            return;
        }
    }

    private async Task PersistAsync(Ready rd)
    {
        Exception? error = null;
        try
        {
            if (rd.Snapshot is { } snapshot)
            {
                await _log.ApplySnapshotAsync(snapshot);
            }

            if (rd.HardState is not null || !rd.Entries.IsEmpty)
            {
                await _log.SaveAsync(rd.HardState, rd.Entries, rd.MustSync);
            }
        }
        catch (Exception e)
        {
            error = e;
        }

        _inbox.TryPost(new PersistedInput(rd, error));
        if (error is not null)
        {
            // Applies waiting on this write see the failure too (and never apply what is not durable).
            throw error;
        }
    }

    private void OnPersisted(PersistedInput persisted)
    {
        _persistInFlight = null;
        if (persisted.Error is { } error)
        {
            throw error;
        }

        var rd = persisted.Ready;
        if (!rd.Entries.IsEmpty)
        {
            Volatile.Write(ref _persistedIndex, rd.Entries.Span[^1].Index);
        }
        else if (rd.Snapshot is { } snapshot)
        {
            Volatile.Write(ref _persistedIndex, snapshot.Index);
        }

        if (rd.Snapshot is { } installed)
        {
            OnSnapshotInstalled(installed.Index);
        }

        Send(rd.MessagesAfterPersist);
        _raw.Advance();
    }

    private void OnSnapshotInstalled(ulong index)
    {
        List<TaskCompletionSource> due;
        lock (_stateLock)
        {
            _snapshotIndex = Math.Max(_snapshotIndex, index);
            due = _snapshotWaiters.Where(w => w.Index <= _snapshotIndex).Select(w => w.Signal).ToList();
            _snapshotWaiters.RemoveAll(w => w.Index <= _snapshotIndex);
        }

        due.ForEach(s => s.TrySetResult());
    }

    /// <summary>For tests: completes once the log's newest installed snapshot is at or above <paramref name="index"/>.</summary>
    internal Task WaitForSnapshotAsync(ulong index)
    {
        lock (_stateLock)
        {
            if (_snapshotIndex >= index)
            {
                return Task.CompletedTask;
            }

            var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _snapshotWaiters.Add((index, signal));
            return signal.Task;
        }
    }

    private void EnqueueApply(ApplyWork work)
    {
        Interlocked.Increment(ref _queuedApplies);
        if (!_applyQueue.TryPost(work))
        {
            Interlocked.Decrement(ref _queuedApplies);
        }
    }

    private void EnqueueCommitted(ReadOnlyMemory<Entry> committed, Task persist)
    {
        var entries = committed.Span;
        _metrics.Committed(entries.Length);
        foreach (var e in entries)
        {
            if (e.Type != EntryType.ConfChange)
            {
                continue;
            }

            // The core requires each change applied, in order, before Advance; the configuration it
            // returns is the one as of this entry, which a snapshot at or after it carries.
            var change = MessageCodec.DecodeConfChange(e.Data.Span);
            _handedOutConf = _raw.ApplyConfChange(change);
            RaftNodeLog.ConfChangeApplied(_logger, Id, change, e.Index, _handedOutConf);
            if (_confChanges.TryPeek(out var pending) && pending.Proposed && pending.Index == 0 && pending.Matches(change))
            {
                pending.Index = e.Index;
                pending.Result = _handedOutConf;
            }
        }

        // Entries this node has not made durable yet wait for this Ready's write before they apply,
        // so the state machine is never ahead of the local log (etcd's consistent index rule).
        var lastIndex = entries[^1].Index;
        var gate = lastIndex > Volatile.Read(ref _persistedIndex) ? persist : null;
        EnqueueApply(new CommittedWork(committed, gate, _handedOutConf));
    }

    private void OnApplied(ulong index)
    {
        _loopAppliedIndex = Math.Max(_loopAppliedIndex, index);
        _reads.CompleteUpTo(_loopAppliedIndex);
        while (_ownEntriesByIndex.Count > 0)
        {
            var first = _ownEntriesByIndex.First();
            if (first.Key > _loopAppliedIndex)
            {
                break;
            }

            _ownEntriesByIndex.Remove(first.Key);
        }

        if (_confChanges.TryPeek(out var change) && change.Index != 0 && change.Index <= _loopAppliedIndex)
        {
            change.Completion.TrySetResult(change.Result!);
        }
    }

    private void OnSoftState(SoftState? soft)
    {
        if (soft is not { } s)
        {
            return;
        }

        var term = _raw.HardState.Term;
        if (s.Role != _role)
        {
            RaftNodeLog.RoleChanged(_logger, Id, s.Role, term);
            if (_role == StateRole.Leader)
            {
                // What this node appended as leader may now be overwritten by the next leader:
                // from here on such proposals are bounded like forwarded ones.
                foreach (var p in _proposals.Values)
                {
                    if (p.DeadlineTick == 0)
                    {
                        p.DeadlineTick = _tick + _proposalTimeoutTicks;
                    }
                }

                if (_confChanges.TryPeek(out var change) && change.DeadlineTick == 0)
                {
                    change.DeadlineTick = _tick + _proposalTimeoutTicks;
                }
            }

            _role = s.Role;
        }

        if (s.Lead != 0)
        {
            _lastKnownLeader = s.Lead;
        }

        foreach (var t in _transfers)
        {
            if (t.Target == s.Lead)
            {
                t.Completion.TrySetResult();
            }
        }

        _raftStatus = _raw.GetStatus();
        if (s.Lead == _leader.LeaderId)
        {
            return;
        }

        if (s.Lead == 0)
        {
            RaftNodeLog.NoLeader(_logger, Id, term);
        }
        else
        {
            RaftNodeLog.LeaderIs(_logger, Id, s.Lead, term);
        }

        _metrics.LeaderChanged();
        var change2 = new LeaderChange(s.Lead, term, s.Lead == Id);
        lock (_stateLock)
        {
            _leader = change2;
            foreach (var subscriber in _leaderSubscribers)
            {
                subscriber.Writer.TryWrite(change2);
            }
        }
    }

    private void OnRefused(RefusedProposal refused)
    {
        foreach (var e in refused.Entries.Span)
        {
            if (e.Type == EntryType.ConfChange)
            {
                if (_confChanges.TryPeek(out var change) && change.Proposed && change.Index == 0
                    && change.Matches(MessageCodec.DecodeConfChange(e.Data.Span)))
                {
                    change.Completion.TrySetException(Refusal(refused.Refusal));
                }
            }
            else if (ProposalEnvelope.TryDecode(e.Data, out var origin, out var requestId, out _)
                && origin == Id && _proposals.TryGetValue(requestId, out var pending))
            {
                FailProposal(pending, Refusal(refused.Refusal));
            }
        }
    }

    // Notes where this node's own commands landed in its log, and fails the proposals a new
    // leader overwrote: Ready.Entries replaces everything from its first index on.
    private void TrackOwnEntries(ReadOnlySpan<Entry> entries)
    {
        if (entries.IsEmpty)
        {
            return;
        }

        var first = entries[0].Index;
        if (_ownEntriesByIndex.Count > 0 && _maxOwnEntryIndex >= first)
        {
            var replaced = _ownEntriesByIndex.Where(p => p.Key >= first).ToList();
            foreach (var (index, requestId) in replaced)
            {
                _ownEntriesByIndex.Remove(index);
                var offset = index - first;
                var kept = offset < (ulong)entries.Length
                    && ProposalEnvelope.TryDecode(entries[(int)offset].Data, out var origin, out var id, out _)
                    && origin == Id && id == requestId;
                if (!kept && _proposals.TryGetValue(requestId, out var pending) && pending.ProposedAsLeader)
                {
                    // Proposed here as leader, so appended once only: this copy was the one.
                    FailProposal(pending, new ProposalDroppedException(ProposalDropReason.Overwritten));
                }
            }
        }

        foreach (var e in entries)
        {
            if (e.Type == EntryType.Normal && ProposalEnvelope.TryDecode(e.Data, out var origin, out var requestId, out _) && origin == Id)
            {
                _ownEntriesByIndex[e.Index] = requestId;
                _maxOwnEntryIndex = e.Index;
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Snapshots over the transport
    // ---------------------------------------------------------------------------------------

    private async Task SendSnapshotAsync(Message message)
    {
        var succeeded = false;
        try
        {
            var snapshot = message.Snapshot ?? throw new InvariantViolationException($"Snapshot message without a snapshot: {message}.");
            var data = await _log.OpenSnapshotDataAsync(snapshot.Index, _stopping.Token);
            await using (data)
            {
                await _transport.SendSnapshotAsync(message, data, _stopping.Token);
            }

            succeeded = true;
            _metrics.Snapshot("sent");
            RaftNodeLog.SnapshotSent(_logger, Id, snapshot.Index, message.To);
        }
        catch (Exception e) when (!_stopping.IsCancellationRequested)
        {
            RaftNodeLog.SnapshotSendFailed(_logger, e, Id, message.To);
        }
        catch (Exception)
        {
            return;
        }

        _inbox.TryPost(new SnapshotSentInput(message.To, succeeded));
    }

    private async ValueTask ReceiveSnapshotAsync(Message message, Stream data, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        ArgumentNullException.ThrowIfNull(data);
        var snapshot = message.Snapshot ?? throw new ArgumentException($"A snapshot message must carry its metadata: {message}.", nameof(message));
        if (_inbox.IsClosed)
        {
            throw Stopped();
        }

        // Durable before the core sees it: its acknowledgement promises the data is here.
        await _log.SaveSnapshotDataAsync(snapshot, async (destination, ct) => await data.CopyToAsync(destination, ct), cancellationToken);
        _metrics.Snapshot("received");
        _inbox.TryPost(new StepInput(message));
    }

    // ---------------------------------------------------------------------------------------
    // The apply pipeline
    // ---------------------------------------------------------------------------------------

    private async Task RunApplyAsync()
    {
        try
        {
            while (true)
            {
                var (items, _, closed) = await _applyQueue.TakeAsync();
                if (closed)
                {
                    return;
                }

                foreach (var item in items)
                {
                    switch (item)
                    {
                        case CommittedWork committed:
                            await ApplyCommittedAsync(committed);
                            break;
                        case RestoreWork restore:
                            await RestoreAsync(restore);
                            break;
                        case SnapshotRequest request:
                            TakeSnapshotIfDue(request.Force);
                            break;
                        default:
                            throw new InvariantViolationException($"Unknown apply work {item.GetType().Name}.");
                    }

                    Interlocked.Decrement(ref _queuedApplies);
                }

                _inbox.TryPost(new AppliedInput(_applierIndex));
            }
        }
        catch (Exception e) when (!_stopping.IsCancellationRequested)
        {
            Stop(e);
        }
    }

    private async Task ApplyCommittedAsync(CommittedWork work)
    {
        if (work.Gate is { } gate)
        {
            await gate;
        }

        var entries = work.Entries;
        var commands = new List<CommittedCommand>(entries.Length);
        var origins = new List<(ulong Origin, ulong RequestId)>(entries.Length);
        long bytes = 0;
        var firstIndex = entries.Span[0].Index;
        foreach (var e in entries.Span)
        {
            if (e.Index != _applierIndex + 1)
            {
                throw new InvariantViolationException($"Node {Id} would apply entry {e.Index} after {_applierIndex}: committed entries must be contiguous.");
            }

            _applierIndex = e.Index;
            _applierTerm = e.Term;
            bytes += e.Data.Length;
            if (e.Type != EntryType.Normal || e.Data.IsEmpty)
            {
                continue;
            }

            if (!ProposalEnvelope.TryDecode(e.Data, out var origin, out var requestId, out var command))
            {
                throw new InvariantViolationException($"Node {Id}: the entry at index {e.Index} (term {e.Term}) is not a RaftNode proposal; the log was written by another host.");
            }

            // Applied on every replica in log order, from the log alone: all drop the same copies.
            if (_dedup.TryRecord(origin, requestId))
            {
                commands.Add(new CommittedCommand(e.Index, command));
                origins.Add((origin, requestId));
            }
        }

        _applierConf = work.ConfAfter;
        var batch = new CommittedBatch(commands, firstIndex, _applierIndex, _applierTerm);
        var results = await _stateMachine.ApplyAsync(batch, _stopping.Token);
        if (results is null || results.Count != commands.Count)
        {
            throw new InvariantViolationException($"The state machine returned {results?.Count} results for {commands.Count} commands (batch ending at index {_applierIndex}).");
        }

        for (var i = 0; i < results.Count; i++)
        {
            if (origins[i].Origin == Id && _proposals.TryRemove(origins[i].RequestId, out var pending))
            {
                pending.Complete(results[i]);
            }
        }

        Volatile.Write(ref _appliedIndex, _applierIndex);
        _entriesSinceSnapshot += (ulong)entries.Length;
        _bytesSinceSnapshot += bytes;
        TakeSnapshotIfDue(force: false);
    }

    private async Task RestoreAsync(RestoreWork work)
    {
        await work.Gate;
        var snapshot = work.Metadata;
        if (snapshot.Index <= _applierIndex)
        {
            throw new InvariantViolationException($"Node {Id} was handed snapshot {snapshot.Index} at applied index {_applierIndex}: the core installs only snapshots above its commit index.");
        }

        var data = await _log.OpenSnapshotDataAsync(snapshot.Index, _stopping.Token);
        await using (data)
        {
            await _dedup.ReadHeaderAsync(data, $"snapshot {snapshot.Index}", _stopping.Token);
            await _stateMachine.RestoreAsync(snapshot.Index, data, _stopping.Token);
        }

        _applierIndex = snapshot.Index;
        _applierTerm = snapshot.Term;
        _applierConf = snapshot.ConfState;
        _entriesSinceSnapshot = 0;
        _bytesSinceSnapshot = 0;
        Volatile.Write(ref _appliedIndex, snapshot.Index);
        _metrics.Snapshot("restored");
        RaftNodeLog.Restored(_logger, Id, snapshot.Index);
    }

    // Captures the state between two applies (cheap, synchronous) and writes it out in the
    // background: the loop and the applies go on meanwhile. The log is compacted by the loop once
    // the data is durable.
    private void TakeSnapshotIfDue(bool force)
    {
        var due = force
            || (_options.SnapshotEveryEntries > 0 && _entriesSinceSnapshot >= _options.SnapshotEveryEntries)
            || (_options.SnapshotEveryLogBytes > 0 && _bytesSinceSnapshot >= _options.SnapshotEveryLogBytes);
        if (!due || _applierIndex == 0 || Interlocked.CompareExchange(ref _snapshotInProgress, 1, 0) != 0)
        {
            return;
        }

        var captured = _stateMachine.CreateSnapshot();
        if (captured.Index != _applierIndex)
        {
            throw new InvariantViolationException($"The state machine captured a snapshot at index {captured.Index}, but it has applied up to {_applierIndex}.");
        }

        var header = _dedup.WriteHeader();
        var metadata = new SnapshotMetadata(_applierIndex, _applierTerm, _applierConf);
        _entriesSinceSnapshot = 0;
        _bytesSinceSnapshot = 0;
        RunInBackground(() => WriteSnapshotAsync(metadata, header, captured));
    }

    private async Task WriteSnapshotAsync(SnapshotMetadata metadata, byte[] header, IStateMachineSnapshot captured)
    {
        try
        {
            await _log.SaveSnapshotDataAsync(
                metadata,
                async (destination, ct) =>
                {
                    await destination.WriteAsync(header, ct);
                    await captured.WriteToAsync(destination, ct);
                },
                _stopping.Token);
            _metrics.Snapshot("taken");
            _inbox.TryPost(new SnapshotSavedInput(metadata));
        }
        catch (Exception e) when (!_stopping.IsCancellationRequested)
        {
            Stop(e);
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
        finally
        {
            await captured.DisposeAsync();
            Volatile.Write(ref _snapshotInProgress, 0);
        }

        // Applies meanwhile may have made the next snapshot due; look now rather than at the next apply.
        EnqueueApply(new SnapshotRequest(Force: false));
    }

    // ---------------------------------------------------------------------------------------
    // Inputs and work items
    // ---------------------------------------------------------------------------------------

    private abstract record LoopInput;

    private sealed record ProposeInput(PendingProposal<TResult> Pending) : LoopInput;

    private sealed record StepInput(Message Message) : LoopInput;

    private sealed record PersistedInput(Ready Ready, Exception? Error) : LoopInput;

    private sealed record AppliedInput(ulong Index) : LoopInput;

    private sealed record ReadInput(ReadWaiter Waiter) : LoopInput;

    private sealed record ConfChangeInput(PendingConfChange Pending) : LoopInput;

    private sealed record TransferInput(PendingTransfer Pending) : LoopInput;

    private sealed record SnapshotSentInput(ulong To, bool Succeeded) : LoopInput;

    private sealed record SnapshotSavedInput(SnapshotMetadata Metadata) : LoopInput;

    private sealed record UnreachableInput(ulong PeerId) : LoopInput;

    private sealed record FailInput(Exception Error) : LoopInput;

    private abstract record ApplyWork;

    private sealed record CommittedWork(ReadOnlyMemory<Entry> Entries, Task? Gate, ConfState ConfAfter) : ApplyWork;

    private sealed record RestoreWork(SnapshotMetadata Metadata, Task Gate) : ApplyWork;

    private sealed record SnapshotRequest(bool Force) : ApplyWork;

    /// <summary>The node's side of the transport: everything inbound is queued to the loop, never handled on the transport's thread.</summary>
    private sealed class Receiver(RaftNode<TResult> node) : IRaftMessageReceiver
    {
        public void Receive(Message message)
        {
            ArgumentNullException.ThrowIfNull(message);
            node._inbox.TryPost(new StepInput(message));
        }

        public ValueTask ReceiveSnapshotAsync(Message snapshotMessage, Stream data, CancellationToken cancellationToken) =>
            node.ReceiveSnapshotAsync(snapshotMessage, data, cancellationToken);

        public void ReportUnreachable(ulong peerId) => node._inbox.TryPost(new UnreachableInput(peerId));
    }
}
