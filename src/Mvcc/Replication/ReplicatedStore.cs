using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Mvcc.Store;
using EmbeddedRaft.Storage.IO;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>
/// One member of a replicated, etcd-shaped key-value store: a <see cref="RaftNode{TResult}"/> whose
/// state machine is an <see cref="MvccStore"/>. Writes (put, delete, txn, compaction, membership)
/// are proposed through Raft from any member and complete once applied on this member; reads are
/// linearizable (ReadIndex, on any member) or serializable (local); watches are served by this
/// member's own store. Responses are etcd's, with headers naming cluster, member and Raft term.
/// Start one per member with <see cref="StartAsync"/>.
/// </summary>
/// <remarks>
/// <para><b>Durability.</b> A write is acknowledged once its log entry is durable on a quorum and
/// applied here. The store commits its B+tree without flushing (the log is the durability), each
/// batch carrying the index of the last entry applied (its consistent index), and syncs it in the
/// background every few thousand entries; a restart replays only the log after what the B+tree
/// holds durably, each entry exactly once.</para>
/// <para><b>Thread-safety.</b> Every member may be called from any thread, concurrently.</para>
/// <para><b>Failure.</b> Refusals (a compacted revision, a missing lease, a request too large)
/// throw the store's exceptions (<see cref="MvccException"/> and its subclasses) and change
/// nothing anywhere. Consensus failures pass through unchanged:
/// <see cref="NoLeaderException"/>, <see cref="Consensus.ProposalDroppedException"/> (the outcome may be
/// unknown: see its reason), <see cref="NodeStoppedException"/>. A failed log write, B+tree write
/// or a command that does not decode stops the member for good (<see cref="ReplicatedStoreStatus.StoppedCause"/>);
/// dispose it and start it again from its directory.</para>
/// <para><b>After disposal.</b> A call made once <see cref="DisposeAsync"/> has begun fails at once
/// with <see cref="ObjectDisposedException"/> or <see cref="NodeStoppedException"/>, whichever part it
/// reaches first (the closed store: puts checked before proposing, serializable reads, watches; the
/// stopped node: linearizable reads and proposals): callers that may race a disposal catch both.</para>
/// </remarks>
public sealed partial class ReplicatedStore : IAsyncDisposable
{
    private readonly ReplicatedStoreOptions _options;
    private readonly IFileSystem _fileSystem;
    private readonly MvccStoreOptions _storeOptions;
    private readonly string _storeDirectory;
    private readonly IRaftTransport _transport;
    private readonly ILogger _logger;
    private readonly MemberRegistry _registry = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _background = [];
    // The same object for the store's life: a snapshot restore swaps its file in place.
    private readonly MvccStore _mvcc;

    // The batch of linearizable single-key reads that joins the read-index group its readers wait
    // for (RangeInReadBatch); replaced when a reader waits for another group or the batch closed.
    // The gate also guards the open batch's list of reads (LinearizableReadBatch.TryAddUnsynchronized).
    private readonly Lock _readBatchGate = new();
    private LinearizableReadBatch? _openReadBatch;
    private RaftNode<object?>? _node;
    private ulong _raftTerm;
    private ResponseHeader? _lastHeader;
    private int _alarms;
    private int _disposed;

    private ReplicatedStore(ReplicatedStoreOptions options, IFileSystem fileSystem, MvccStoreOptions storeOptions, string storeDirectory, MvccStore mvcc, IRaftTransport transport, ILogger logger)
    {
        _options = options;
        _fileSystem = fileSystem;
        _storeOptions = storeOptions;
        _storeDirectory = storeDirectory;
        _mvcc = mvcc;
        _transport = transport;
        _logger = logger;
        mvcc.HeaderFactory = NewHeader;
        _lastSyncTimestamp = Clock.GetTimestamp();
    }

    /// <summary>
    /// Deterministic mode (<see cref="ReplicatedStoreOptions.Scheduler"/> set): this member's own
    /// awaits resume on the scheduler; otherwise they do not come back to the caller's context.
    /// </summary>
    internal bool ResumeOnScheduler => _options.Scheduler is not null;

    /// <summary>This member's id.</summary>
    public ulong MemberId => _options.MemberId;

    /// <summary>The cluster's id (from the registry; 0 while a joining member has not yet received it).</summary>
    public ulong ClusterId => _registry.ClusterId != 0 ? _registry.ClusterId : _options.ClusterId;

    /// <summary>This member's state now: Raft indexes and term, leader, store revision and size, alarms, and why it stopped if it did.</summary>
    public ReplicatedStoreStatus Status
    {
        get
        {
            var node = Node.Status;
            var store = _mvcc;
            return new ReplicatedStoreStatus
            {
                MemberId = MemberId,
                ClusterId = ClusterId,
                LeaderId = node.LeaderId,
                RaftTerm = node.Raft.HardState.Term,
                // The core's status is refreshed once per tick and may lag the applied index, which is
                // live: whatever is applied is committed.
                RaftIndex = Math.Max(node.Raft.HardState.Commit, node.AppliedIndex),
                RaftAppliedIndex = node.AppliedIndex,
                Revision = store.Revision,
                CompactRevision = store.CompactRevision,
                DbSizeBytes = store.DbSizeBytes,
                // The registry is applied state (live); the core's configuration lags by up to a tick.
                IsLearner = _registry.Members.TryGetValue(MemberId, out var self) ? self.IsLearner : node.Raft.Config.Learners.Contains(MemberId),
                Alarms = (StoreAlarms)Volatile.Read(ref _alarms),
                StoppedCause = node.StopCause,
            };
        }
    }

    /// <summary>The store as of now (swapped by a snapshot restore).</summary>
    internal MvccStore Mvcc => _mvcc;

    /// <summary>The Raft node (for tests and the partial files).</summary>
    internal RaftNode<object?> Node => _node ?? throw new InvalidOperationException("The replicated store has not started its Raft node yet.");

    internal MemberRegistry Registry => _registry;

    internal ILogger Logger => _logger;

    internal CancellationToken Stopping => _stopping.Token;

    /// <summary>
    /// Starts this member from <see cref="ReplicatedStoreOptions.DataDirectory"/>: opens its store
    /// (<c>mvcc/</c>) and Raft log (<c>raft/</c>), bootstraps a new cluster from
    /// <see cref="ReplicatedStoreOptions.InitialMembers"/> when the log is empty (or waits to be added
    /// when they are null), replays the log entries the store has not applied, binds
    /// <paramref name="transport"/> and starts replicating. With a
    /// <see cref="Consensus.Transport.Tcp.TcpTransport"/> the transport's peer addresses are set from
    /// the registry here and on every membership change.
    /// </summary>
    /// <exception cref="ArgumentException">The options break a rule (the message names them).</exception>
    /// <exception cref="InvalidOperationException">The directory holds another cluster's data (cluster id mismatch), or the store is ahead of the log.</exception>
    /// <exception cref="Storage.CorruptionException">The log, a snapshot or the store is damaged.</exception>
    /// <exception cref="Storage.StorageLockedException">Another member holds the directory.</exception>
    public static async ValueTask<ReplicatedStore> StartAsync(ReplicatedStoreOptions options, IRaftTransport transport, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(transport);
        options.Validate();
        bool resumeOnScheduler = options.Scheduler is not null;
        var fileSystem = options.FileSystem ?? PhysicalFileSystem.Instance;
        var loggers = options.LoggerFactory ?? NullLoggerFactory.Instance;
        var logger = loggers.CreateLogger<ReplicatedStore>();
        var storeOptions = options.Store with
        {
            Durability = MvccDurability.NoSync,
            Leases = options.Store.Leases with { RevokeExpired = false, TimeProvider = options.TimeProvider ?? options.Store.Leases.TimeProvider },
            Logger = options.Store.Logger ?? loggers.CreateLogger<MvccStore>(),
        };
        if (options.Scheduler is { } scheduler)
        {
            // Deterministic mode: the store's writer, timers and awaits on the same scheduler and clock as the node.
            var clock = options.TimeProvider ?? options.Raft.TimeProvider ?? TimeProvider.System;
            storeOptions = storeOptions with
            {
                Scheduler = scheduler,
                TimeProvider = clock,
                Watch = storeOptions.Watch with { TimeProvider = clock },
            };
        }

        string storeDirectory = Path.Combine(options.DataDirectory, "mvcc");
        var mvcc = MvccStore.Open(fileSystem, storeDirectory, storeOptions);
        ReplicatedStore? store = null;
        try
        {
            store = new ReplicatedStore(options, fileSystem, storeOptions, storeDirectory, mvcc, transport, logger);
            await store.LoadRegistryAsync(cancellationToken).ConfigureAwait(resumeOnScheduler);
            store.SetAllPeerAddresses();
            var raftOptions = options.Raft with
            {
                NodeId = options.MemberId,
                DataDirectory = Path.Combine(options.DataDirectory, "raft"),
                InitialVoters = options.InitialMembers?.Select(m => m.Id).ToArray(),
                FileSystem = fileSystem,
                TimeProvider = options.TimeProvider ?? options.Raft.TimeProvider,
                Scheduler = options.Scheduler ?? options.Raft.Scheduler,
                Logger = options.Raft.Logger ?? loggers.CreateLogger("EmbeddedRaft.Consensus.RaftNode"),
            };
            store._node = await RaftNode<object?>.StartAsync(raftOptions, new ReplicatedStateMachine(store), transport, cancellationToken).ConfigureAwait(resumeOnScheduler);
            Volatile.Write(ref store._raftTerm, store._node.Status.Raft.HardState.Term);
            store.StartBackground();
            ReplicatedStoreLog.Started(logger, options.MemberId, store.ClusterId, store._node.Status.AppliedIndex, store.Mvcc.Revision, store._registry.Members.Count);
            return store;
        }
        catch
        {
            if (store?._node is { } node)
            {
                await node.DisposeAsync().ConfigureAwait(resumeOnScheduler);
            }

            await (store?.Mvcc ?? mvcc).DisposeAsync().ConfigureAwait(resumeOnScheduler);
            throw;
        }
    }

    // ------------------------------------------------------------ KV

    /// <summary>Writes a key (etcd's <c>Put</c>) through the log; completes once applied on this member.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="request"/> is null.</exception>
    /// <exception cref="MvccException">etcd's refusals: an empty key, IgnoreValue/IgnoreLease misuse, a missing lease, a request larger than <see cref="MvccStoreOptions.MaxRequestBytes"/>, or the corruption alarm (<see cref="MvccError.Corrupt"/>). Nothing was written.</exception>
    /// <exception cref="NoLeaderException">No leader is known; nothing was proposed.</exception>
    /// <exception cref="Consensus.ProposalDroppedException">The proposal was dropped or timed out (with <see cref="Consensus.ProposalDropReason.TimedOut"/> it may still apply).</exception>
    /// <exception cref="NodeStoppedException">The member stopped.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the write may still apply.</exception>
    /// <remarks>
    /// The put waits for its entry in a pooled state machine (reused once the returned task's result
    /// is taken): as with any <see cref="ValueTask{TResult}"/>, await it once.
    /// </remarks>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<PutResponse> PutAsync(PutRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        RequestValidator.CheckPut(request);
        CheckWritable(RequestSize.OfPut(request));

        // The command is encoded into this thread's reused buffer: ProposeAsync copies it into its
        // log entry before it returns, and nothing else encodes on this thread in between.
        var result = await Node.ProposeAsync(CommandCodec.EncodePutReused(request), cancellationToken).ConfigureAwait(ResumeOnScheduler);

        // A put without PrevKv is answered by its revision alone (the apply path builds no response
        // on any member); its one response is built here, for its caller.
        if (result is long revision)
        {
            return new PutResponse { Header = NewHeader(revision) };
        }

        var response = Unwrap<PutResponse>(result);
        return new PutResponse { Header = Stamp(response.Header), PrevKv = response.PrevKv };
    }

    /// <summary>Deletes a key or range (etcd's <c>DeleteRange</c>) through the log; completes once applied on this member.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="request"/> is null.</exception>
    /// <exception cref="MvccException">An empty key, a request too large, or the corruption alarm. Nothing was written.</exception>
    /// <exception cref="NoLeaderException">No leader is known.</exception>
    /// <exception cref="Consensus.ProposalDroppedException">The proposal was dropped or timed out.</exception>
    /// <exception cref="NodeStoppedException">The member stopped.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the delete may still apply.</exception>
    public async ValueTask<DeleteRangeResponse> DeleteRangeAsync(DeleteRangeRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        RequestValidator.CheckDeleteRange(request);
        CheckWritable(RequestSize.OfDeleteRange(request));
        var response = Unwrap<DeleteRangeResponse>(await Node.ProposeAsync(CommandCodec.EncodeDeleteRange(request), cancellationToken).ConfigureAwait(ResumeOnScheduler));
        return new DeleteRangeResponse { Header = Stamp(response.Header), Deleted = response.Deleted, PrevKvs = response.PrevKvs };
    }

    /// <summary>
    /// Runs a transaction (etcd's <c>Txn</c>) through the log: compares and the chosen branch are
    /// evaluated when it is applied (on every member alike); completes once applied on this member.
    /// Ranges inside it are as linearizable as the transaction.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="request"/> is null.</exception>
    /// <exception cref="MvccException">etcd's refusals (too many operations, a key written twice, an empty key, a request too large, a missing lease, a range at a compacted or future revision), or the corruption alarm. Nothing was written.</exception>
    /// <exception cref="ArgumentException">A null list or entry, a negative limit or revision, an undefined compare.</exception>
    /// <exception cref="NoLeaderException">No leader is known.</exception>
    /// <exception cref="Consensus.ProposalDroppedException">The proposal was dropped or timed out.</exception>
    /// <exception cref="NodeStoppedException">The member stopped.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the transaction may still apply.</exception>
    public async ValueTask<TxnResponse> TxnAsync(TxnRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        RequestValidator.CheckTxn(request, _storeOptions.MaxTxnOps);
        CheckWritable(RequestSize.OfTxn(request));
        var response = Unwrap<TxnResponse>(await Node.ProposeAsync(CommandCodec.EncodeTxn(request), cancellationToken).ConfigureAwait(ResumeOnScheduler));
        return new TxnResponse { Header = Stamp(response.Header), Succeeded = response.Succeeded, Responses = response.Responses };
    }

    /// <summary>
    /// Reads a key or range (etcd's <c>Range</c>). <see cref="ReadConsistency.Linearizable"/> (the
    /// default) first confirms a read point with the leader and waits until this member has applied
    /// it, so the read sees every write acknowledged before it began, on any member;
    /// <see cref="ReadConsistency.Serializable"/> reads this member's state at once.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="request"/> is null.</exception>
    /// <exception cref="MvccException">An empty key or an undefined sort option.</exception>
    /// <exception cref="FutureRevisionException">The revision is above the current one.</exception>
    /// <exception cref="RevisionCompactedException">The revision is compacted.</exception>
    /// <exception cref="NoLeaderException">Linearizable, and no leader confirmed a read point.</exception>
    /// <exception cref="TimeoutException">Linearizable, and the leader did not confirm a read point in time.</exception>
    /// <exception cref="NodeStoppedException">The member stopped.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <remarks>
    /// A linearizable read waits for its read-index round in a pooled object (reused once the
    /// returned task's result is taken): as with any <see cref="ValueTask{TResult}"/>, await it once.
    /// Reads released by one round continue one after another on one thread (see
    /// <see cref="RaftNode{TResult}.ReadIndexAsync"/>): do not block in the continuation. The
    /// single-key reads a round releases are read together first, their cache misses overlapped;
    /// each gets the answer or error it would have got alone (a read cancelled meanwhile, its
    /// cancellation at once).
    /// </remarks>
    public ValueTask<RangeResponse> RangeAsync(RangeRequest request, ReadConsistency consistency = ReadConsistency.Linearizable, CancellationToken cancellationToken = default)
    {
        // A linearizable single-key read joins the reads waiting for the same read-index group: they
        // are answered together once it completes (LinearizableReadBatch; with a scheduler of its
        // own, on that scheduler). Every other request is read alone.
        return consistency == ReadConsistency.Linearizable && request is not null && request.RangeEnd.IsEmpty
            && !_options.BrokenRules.LinearizableReadWithoutReadIndex
            ? RangeInReadBatch(request, cancellationToken)
            : RangeAloneAsync(request!, consistency, cancellationToken);
    }

    private ValueTask<RangeResponse> RangeInReadBatch(RangeRequest request, CancellationToken cancellationToken)
    {
        ValueTask readIndex;
        try
        {
            RequestValidator.CheckRange(request);
            cancellationToken.ThrowIfCancellationRequested();

            // The group's own task (no token): a cancelled read leaves its batch, not the group,
            // which goes on for the others (as a cancelled ReadIndexAsync leaves a round).
            readIndex = Node.ReadIndexAsync(CancellationToken.None);
            if (readIndex.IsCompleted)
            {
                // Answered at once (a stopped node's error, typically): nothing to wait for together.
                readIndex.GetAwaiter().GetResult();
                return new ValueTask<RangeResponse>(Mvcc.RangeValidated(request));
            }
        }
        catch (Exception e)
        {
            // As the async method would: the error in the returned task, not thrown by the call.
            return ValueTask.FromException<RangeResponse>(e);
        }

        // Asked without a token, so the task is the read-index group's own, shared by its callers.
        var group = readIndex.AsTask();
        var read = BatchedRead.Rent(request, cancellationToken);
        read.WatchCancellation();
        LinearizableReadBatch? opened = null;
        lock (_readBatchGate)
        {
            if (_openReadBatch is not { } batch || batch.ReadIndex != group || !batch.TryAddUnsynchronized(read))
            {
                opened = _openReadBatch = new LinearizableReadBatch(Mvcc, group, _readBatchGate, _options.Scheduler, _options.BrokenRules, expectedReads: _openReadBatch?.AddedUnsynchronized ?? 0);
                opened.TryAddUnsynchronized(read);
            }
        }

        // Outside the gate: a group completed meanwhile runs the flush elsewhere at once.
        opened?.WaitForReadIndex();
        return new ValueTask<RangeResponse>(read, read.Version);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<RangeResponse> RangeAloneAsync(RangeRequest request, ReadConsistency consistency, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        RequestValidator.CheckRange(request);
        if (consistency == ReadConsistency.Linearizable)
        {
            if (!_options.BrokenRules.LinearizableReadWithoutReadIndex)
            {
                await Node.ReadIndexAsync(cancellationToken).ConfigureAwait(ResumeOnScheduler);
            }
        }
        else if (consistency != ReadConsistency.Serializable)
        {
            throw new ArgumentOutOfRangeException(nameof(consistency), consistency, "Not a ReadConsistency.");
        }

        // The store's header factory stamps this member's header (NewHeader) on the response.
        return Mvcc.RangeValidated(request);
    }

    /// <summary>
    /// Compacts the history at <paramref name="revision"/> on every member (etcd's <c>Compact</c>),
    /// through the log: every member compacts at the same revision. Completes once recorded here;
    /// with <paramref name="physical"/>, once this member has also pruned the history.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="revision"/> is negative.</exception>
    /// <exception cref="RevisionCompactedException"><paramref name="revision"/> is at or below the compaction revision.</exception>
    /// <exception cref="FutureRevisionException"><paramref name="revision"/> is above the current revision.</exception>
    /// <exception cref="NoLeaderException">No leader is known.</exception>
    /// <exception cref="Consensus.ProposalDroppedException">The proposal was dropped or timed out.</exception>
    /// <exception cref="NodeStoppedException">The member stopped.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the compaction may still apply.</exception>
    public async ValueTask<CompactResponse> CompactAsync(long revision, bool physical = false, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(revision);
        var result = await Node.ProposeAsync(CommandCodec.EncodeCompact(revision, physical), cancellationToken).ConfigureAwait(ResumeOnScheduler);
        var pending = Unwrap<PendingCompaction>(result);
        var response = await SchedulerWaits.WaitAsync(pending.Response, cancellationToken).ConfigureAwait(ResumeOnScheduler);
        if (physical)
        {
            await Mvcc.WaitForCompactionsAsync(cancellationToken).ConfigureAwait(ResumeOnScheduler);
        }

        return new CompactResponse { Header = Stamp(response.Header) };
    }

    // ------------------------------------------------------------ watches

    /// <summary>
    /// Opens a watch (etcd's <c>Watch</c>) on this member's store: it sees exactly the history the
    /// log committed, in revision order, as this member applies it (a follower's events may come
    /// later than the leader's, never differently). See <see cref="MvccStore.Watch"/> and
    /// <see cref="WatchStream"/> for the guarantees; response headers name this member.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="request"/> is null.</exception>
    /// <exception cref="MvccException">The key is empty.</exception>
    /// <exception cref="ArgumentException">A negative start revision, or a range end not above the key.</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed.</exception>
    public WatchStream Watch(WatchRequest request) => Mvcc.Watch(request);

    /// <summary>The responses of a watch on this member for <c>await foreach</c> (see <see cref="MvccStore.WatchAsync"/>).</summary>
    /// <exception cref="ArgumentNullException"><paramref name="request"/> is null.</exception>
    /// <exception cref="MvccException">The key is empty.</exception>
    /// <exception cref="ArgumentException">A negative start revision, or a range end not above the key.</exception>
    public IAsyncEnumerable<WatchResponse> WatchAsync(WatchRequest request, CancellationToken cancellationToken = default) => Mvcc.WatchAsync(request, cancellationToken);

    // ------------------------------------------------------------ leadership

    /// <summary>
    /// The leader as this member sees it: the current one first, then every change, until the
    /// member is disposed (the stream ends) or fails (it throws <see cref="NodeStoppedException"/>).
    /// </summary>
    public IAsyncEnumerable<LeaderChange> LeaderChanges(CancellationToken cancellationToken = default) => Node.LeaderChanges(cancellationToken);

    /// <summary>Hands leadership to voter <paramref name="target"/>; completes once this member sees it lead.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="target"/> is 0.</exception>
    /// <exception cref="TimeoutException"><paramref name="target"/> did not become leader in time.</exception>
    /// <exception cref="NodeStoppedException">The member stopped.</exception>
    public ValueTask TransferLeadershipAsync(ulong target, CancellationToken cancellationToken = default) => Node.TransferLeadershipAsync(target, cancellationToken);

    /// <summary>
    /// Stops the member: its Raft node first (pending calls fail with <see cref="NodeStoppedException"/>),
    /// then background work, then the store (synced, so the next start replays nothing it applied).
    /// Watches end. Idempotent.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        try
        {
            if (ResumeOnScheduler)
            {
                // Deterministic mode: CancelAsync runs the callbacks on the thread pool; here they run now, on the scheduler's thread.
                _stopping.Cancel();
            }
            else
            {
                await _stopping.CancelAsync().ConfigureAwait(false);
            }
            if (_node is not null)
            {
                await _node.DisposeAsync().ConfigureAwait(ResumeOnScheduler);
            }

            Task[] background;
            lock (_background)
            {
                background = [.. _background];
            }

            foreach (var task in background)
            {
                try
                {
                    await task.ConfigureAwait(ResumeOnScheduler);
                }
                catch (Exception)
                {
                    // Ended by the stop, or failed: a sync failure was logged, a stopped node has its cause.
                }
            }
        }
        finally
        {
            // Always closed, even when stopping the node failed: its writer thread and file must not outlive the member.
            await Mvcc.DisposeAsync().ConfigureAwait(ResumeOnScheduler);
            _stopping.Dispose();
        }
    }

    // ------------------------------------------------------------ helpers

    /// <summary>The result of this member's apply of a command it proposed: the response, or the refusal rethrown as it was.</summary>
    internal static T Unwrap<T>(object? result)
    {
        if (result is Exception refusal)
        {
            ExceptionDispatchInfo.Throw(refusal);
        }

        return result is T typed ? typed : throw new InvariantViolationException($"Replicated store: a command answered with {result?.GetType().Name ?? "null"}, expected {typeof(T).Name}.");
    }

    /// <summary>Rethrows the refusal a command was answered with, if it was.</summary>
    internal static void ThrowIfRefused(object? result)
    {
        if (result is Exception refusal)
        {
            ExceptionDispatchInfo.Throw(refusal);
        }
    }

    /// <summary>A header like <paramref name="header"/> that names this member, its cluster and its term.</summary>
    internal ResponseHeader Stamp(ResponseHeader header) => NewHeader(header.Revision);

    private ResponseHeader NewHeader(long revision)
    {
        // Headers are immutable: the reads between two writes (same revision, same term) share the
        // last one made instead of allocating one each.
        ulong term = Volatile.Read(ref _raftTerm) is > 0 and var tracked ? tracked : TermBeforeTracking();
        ulong clusterId = ClusterId;
        if (Volatile.Read(ref _lastHeader) is { } last && last.Revision == revision && last.RaftTerm == term && last.ClusterId == clusterId)
        {
            return last;
        }

        var header = new ResponseHeader { Revision = revision, ClusterId = clusterId, MemberId = MemberId, RaftTerm = term };
        Volatile.Write(ref _lastHeader, header);
        return header;
    }

    /// <summary>
    /// The term for a header stamped before the term tracker (a background reader of the node's
    /// leader changes) saw the first one, as on a loaded machine a member's first answers can be:
    /// the node's status, refreshed at every leader change it steps, already has it.
    /// </summary>
    private ulong TermBeforeTracking() => _node?.Status.Raft.HardState.Term ?? 0;

    /// <summary>Refuses a write before it is proposed: under the corruption alarm, or larger than the store takes (so it never enters the log).</summary>
    private void CheckWritable(long requestBytes)
    {
        if ((Volatile.Read(ref _alarms) & (int)StoreAlarms.Corrupt) != 0)
        {
            throw new MvccException(MvccError.Corrupt);
        }

        if (requestBytes + RequestSize.WrapperBytes > _storeOptions.MaxRequestBytes)
        {
            throw new MvccException(MvccError.RequestTooLarge, $"{MvccException.MessageOf(MvccError.RequestTooLarge)} ({requestBytes + RequestSize.WrapperBytes} bytes; MaxRequestBytes is {_storeOptions.MaxRequestBytes})");
        }
    }

    /// <summary>Raises <paramref name="alarm"/> (for the hash check): from then on <see cref="Status"/> shows it, and with <see cref="StoreAlarms.Corrupt"/> writes are refused.</summary>
    internal void RaiseAlarm(StoreAlarms alarm)
    {
        int current;
        do
        {
            current = Volatile.Read(ref _alarms);
        }
        while (Interlocked.CompareExchange(ref _alarms, current | (int)alarm, current) != current);
    }

    private void StartBackground()
    {
        RunInBackground(TrackTermAsync);
        StartLeaseWork();
        StartHashCheckWork();
    }

    /// <summary>Runs <paramref name="work"/> until the store stops; it is awaited by <see cref="DisposeAsync"/>.</summary>
    internal void RunInBackground(Func<Task> work)
    {
        // Deterministic mode: on the scheduler, as everything else (Task.Run would be the thread pool).
        var task = _options.Scheduler is { } scheduler
            ? Task.Factory.StartNew(work, CancellationToken.None, TaskCreationOptions.DenyChildAttach, scheduler).Unwrap()
            : Task.Run(work);
        lock (_background)
        {
            _background.RemoveAll(t => t.IsCompleted);
            _background.Add(task);
        }
    }

    // The term in response headers: the node's term as of the last leader change it reported.
    private async Task TrackTermAsync()
    {
        try
        {
            await foreach (var change in Node.LeaderChanges(_stopping.Token).ConfigureAwait(ResumeOnScheduler))
            {
                Volatile.Write(ref _raftTerm, Math.Max(Volatile.Read(ref _raftTerm), change.Term));
                OnLeaderChange(change);
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (NodeStoppedException)
        {
        }
    }

    /// <summary>Leases (ReplicatedStore.Leases.cs): start the leader's expiry work.</summary>
    partial void StartLeaseWork();

    /// <summary>Hash check (ReplicatedStore.HashCheck.cs): start the periodic check.</summary>
    partial void StartHashCheckWork();

    /// <summary>Leases: react to a leader change as this member observed it (promote or demote the lessor).</summary>
    partial void OnLeaderChange(LeaderChange change);
}
