using System.Buffers.Binary;
using EmbeddedRaft.Mvcc.Index;
using EmbeddedRaft.Mvcc.Watch;
using EmbeddedRaft.Storage;
using EmbeddedRaft.Storage.BTree;

namespace EmbeddedRaft.Mvcc.Store;

/// <summary>
/// The store's one writer: a dedicated thread (or, in deterministic mode, a pump task on
/// <see cref="MvccStoreOptions.Scheduler"/>) that takes queued write requests in order, applies
/// each as a <see cref="WriteTransaction"/> inside the current batch (one B+tree write transaction),
/// commits batches by count and time, and runs compactions in steps between batches.
/// </summary>
/// <remarks>
/// <para>Two modes, one set of steps (<see cref="Process"/>). Thread mode (no scheduler): the thread
/// blocks for requests and times the no-sync batch itself. Scheduled mode: no thread; a request
/// queues a pump task on the scheduler when none is queued; the pump applies every queued request,
/// then does the idle work the thread would (commit a due batch, or one compaction step, after which
/// it queues itself again so other work interleaves), and arms a <see cref="MvccStoreOptions.TimeProvider"/>
/// timer for a batch that is not yet due, whose callback only queues the pump. Completions then run
/// their callers' continuations without a thread-pool hop (see <see cref="WriteOp.ContinueInline"/>):
/// an awaiter on the scheduler is queued to it, so nothing leaves the scheduler's thread.
/// Invariant (scheduled mode): at most one pump runs at a time, and never re-entrantly.</para>
/// <para>Batching (etcd's backend batch): in <see cref="MvccDurability.Synced"/> mode a batch is
/// committed (synced) as soon as no further write is queued or it holds
/// <see cref="MvccStoreOptions.BatchLimit"/> writes, and only then are its writers answered: group
/// commit. In <see cref="MvccDurability.NoSync"/> mode writers are answered once applied, and the
/// batch is committed without a flush at <see cref="MvccStoreOptions.BatchLimit"/> writes or
/// <see cref="MvccStoreOptions.BatchInterval"/> after its first write, on the store's clock
/// (<see cref="MvccStoreOptions.TimeProvider"/>): when the queue is empty, by the thread's timed wait
/// or the pump's timer, and under steady load when the writer takes its next slice of queued
/// requests (<see cref="CommitBatchIfDueBeforeSlice"/>), whichever comes first.</para>
/// <para>Compaction steps run only between batches (never inside one), one step per batch commit
/// while writes keep coming, so a writer waits for at most one step.</para>
/// <para>Failure: an exception from the B+tree (or anything after a change was made) faults the
/// store: the waiting writers get it, and every later request gets <see cref="StorageFaultedException"/>.</para>
/// </remarks>
internal sealed class StoreWriter
{
    /// <summary>The writer thread's name (thread mode): what a debugger, a profiler and the tests see.</summary>
    internal const string ThreadName = "MvccStore writer";

    private readonly StoreState _state;
    private readonly object _queueGate = new();

    // Requests go into _queue under _queueGate; the writer swaps the whole queue out into _taken
    // (writer thread only) in one lock and works through it without the lock, so callers and the
    // writer meet once per drain rather than twice per request. Order is kept: _taken is always
    // empty before the next swap.
    private Queue<WriteOp> _queue = new();
    private Queue<WriteOp> _taken = new();
    private bool _writerWaiting;

    // Scheduled mode: the scheduler, the batch clock, whether a pump task is queued (under
    // _queueGate), whether one is running (scheduler thread only), the batch-interval timer.
    private readonly TaskScheduler? _scheduler;
    private readonly TimeProvider _clock;
    private bool _pumpQueued;
    private bool _pumping;
    private bool _stopped;
    private ITimer? _batchTimer;
    private readonly Queue<CompactionJob> _compactions = new();
    private readonly List<WriteOp> _awaitingCommit = [];
    private readonly Thread? _thread;
    private readonly bool _synced;
    private bool _stopRequested;

    // Watches: told of each revision's changes, and of commits and faults (issue 16).
    private readonly WatchHub _watches;

    // Writer thread only.
    private Transaction? _batch;
    private Bucket? _keys;

    // The batch's one MVCC write transaction, begun again for each request (no object per write).
    private WriteTransaction? _transaction;
    private int _batchWrites;
    private long _batchStartedTimestamp;

    /// <summary>Batches committed so far (writer thread writes; read by benchmarks and tests).</summary>
    private long _batchesCommitted;
    private bool _consistentIndexChanged;

    public StoreWriter(StoreState state, IEnumerable<CompactionJob> resumedCompactions, WatchHub watches)
    {
        _state = state;
        _watches = watches;
        _synced = state.Options.Durability == MvccDurability.Synced;
        foreach (var job in resumedCompactions)
        {
            _compactions.Enqueue(job);
        }

        _scheduler = state.Options.Scheduler;
        _clock = state.Options.TimeProvider ?? TimeProvider.System; // System: the same timestamps as Stopwatch
        if (_scheduler is null)
        {
            _thread = new Thread(Run) { IsBackground = true, Name = ThreadName };
            _thread.Start();
        }
        else
        {
            if (_compactions.Count > 0)
            {
                // A compaction a crash interrupted resumes as the thread would: when idle.
                SchedulePump();
            }
        }
    }

    /// <summary>Batches committed so far (for benchmarks: the commits, and so the syncs, a run's writes took).</summary>
    internal long BatchesCommitted => Volatile.Read(ref _batchesCommitted);

    /// <summary>
    /// Whether the writer may run one compaction step now: compaction work is queued, the store is
    /// not faulted, and no batch is open. Steps run only between batches: a stored step is a B+tree
    /// write transaction of its own, which cannot begin while the batch's transaction is open (the
    /// B+tree has one writer at a time), and taking at most one step per batch boundary is what
    /// bounds a writer's wait behind a compaction to a single step (issue 15: physical compaction
    /// never stalls writers for more than one batch). A faulted store takes no more steps (its
    /// compaction waiters were failed with it).
    /// </summary>
    private bool CompactionStepIsDueBetweenBatches => _batch is null && _compactions.Count > 0 && _state.Failure is null;

    /// <summary>Queues <paramref name="op"/>; it completes as described in the class remarks.</summary>
    /// <exception cref="ObjectDisposedException">The writer was asked to stop.</exception>
    public void Enqueue(WriteOp op)
    {
        lock (_queueGate)
        {
            ObjectDisposedException.ThrowIf(_stopRequested, typeof(MvccStore));

            if (op.Kind == WriteOpKind.Stop)
            {
                _stopRequested = true;
            }

            _queue.Enqueue(op);
            if (_scheduler is null)
            {
                if (_writerWaiting)
                {
                    Monitor.Pulse(_queueGate);
                }

                return;
            }

            op.ContinueInline();
            if (_pumpQueued)
            {
                return;
            }

            _pumpQueued = true;
        }

        StartPump();
    }

    /// <summary>Stops the thread after it has committed what it applied; waits for it.</summary>
    public void Stop()
    {
        var stop = new WriteOp(WriteOpKind.Stop, null, 0);
        bool queued;
        lock (_queueGate)
        {
            queued = !_stopRequested;
        }

        if (queued)
        {
            Enqueue(stop);
        }

        if (_thread is not null)
        {
            _thread.Join();
            return;
        }

        // Scheduled mode: the caller is on the scheduler's thread, so nothing else runs the pump
        // meanwhile; waiting for a queued pump task would wait for this very thread.
        RunQueuedInline();
        _batchTimer?.Dispose();
    }

    /// <summary>
    /// Scheduled mode: applies every queued request now, on the calling thread (the scheduler's),
    /// for the blocking calls (stop, checkpoint for a snapshot image) that cannot wait for the pump task.
    /// </summary>
    /// <exception cref="InvariantViolationException">Called from inside the pump (a continuation ran inline on the writer).</exception>
    public void RunQueuedInline()
    {
        if (_scheduler is null)
        {
            throw new InvariantViolationException("MVCC writer: RunQueuedInline is for scheduled mode only.");
        }

        if (_pumping)
        {
            throw new InvariantViolationException("MVCC writer: the writer was entered re-entrantly (a continuation that should have been queued to the scheduler ran inside the writer).");
        }

        _pumping = true;
        try
        {
            ProcessQueued();
        }
        finally
        {
            _pumping = false;
        }
    }

    private void SchedulePump()
    {
        lock (_queueGate)
        {
            if (_pumpQueued)
            {
                return;
            }

            _pumpQueued = true;
        }

        StartPump();
    }

    private void StartPump() =>
        _ = Task.Factory.StartNew(static writer => ((StoreWriter)writer!).Pump(), this, CancellationToken.None, TaskCreationOptions.DenyChildAttach, _scheduler!);

    /// <summary>Scheduled mode: one pump task (see the class remarks).</summary>
    private void Pump()
    {
        lock (_queueGate)
        {
            _pumpQueued = false;
        }

        if (_pumping)
        {
            throw new InvariantViolationException("MVCC writer: a pump task ran while another pump ran (the scheduler is not single-threaded?).");
        }

        _pumping = true;
        try
        {
            ProcessQueued();
            if (_stopped)
            {
                return;
            }

            try
            {
                DoIdleWork();
            }
            catch (Exception e)
            {
                Fault(e);
            }
        }
        finally
        {
            _pumping = false;
        }
    }

    /// <summary>Scheduled mode: handles every queued request (the pump's and the inline runs' common part).</summary>
    private void ProcessQueued()
    {
        while (!_stopped && TakeQueued() is { } op)
        {
            try
            {
                if (!Process(op))
                {
                    _stopped = true;
                }
            }
            catch (Exception e)
            {
                // As the thread's loop: whatever escaped faults the store.
                Fault(e);
            }
        }
    }

    /// <summary>Scheduled mode, nothing queued: commit a due batch (or arm its timer), else one compaction step.</summary>
    private void DoIdleWork()
    {
        if (_batch is not null)
        {
            var remaining = _state.Options.BatchInterval - _clock.GetElapsedTime(_batchStartedTimestamp);
            if (_synced || remaining <= TimeSpan.Zero)
            {
                CommitBatch(CommitDurabilityFor(forceSync: false));
            }
            else
            {
                // The callback only queues the pump: writer work never runs inside a timer callback.
                _batchTimer ??= _clock.CreateTimer(static writer => ((StoreWriter)writer!).SchedulePump(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
                _batchTimer.Change(remaining, Timeout.InfiniteTimeSpan);
                return;
            }
        }

        if (CompactionStepIsDueBetweenBatches)
        {
            CompactionStep();

            // One step per pump: queued requests and other tasks go in between, as writes do between the thread's steps.
            if (_compactions.Count > 0 && _state.Failure is null)
            {
                SchedulePump();
            }
        }
    }

    /// <summary>Scheduled mode: the next queued request, or null when none is queued (never waits).</summary>
    private WriteOp? TakeQueued()
    {
        if (_taken.Count > 0)
        {
            return _taken.Dequeue();
        }

        lock (_queueGate)
        {
            if (_queue.Count == 0)
            {
                return null;
            }

            (_queue, _taken) = (_taken, _queue);
        }

        CommitBatchIfDueBeforeSlice();
        return _taken.Dequeue();
    }

    private void Run()
    {
        while (true)
        {
            try
            {
                if (!RunOnce())
                {
                    return;
                }
            }
            catch (Exception e)
            {
                // Never let the thread die with callers waiting: whatever escaped faults the store.
                Fault(e);
            }
        }
    }

    /// <summary>Thread mode: takes and handles one request (or does due batch or compaction work); false after the stop request.</summary>
    private bool RunOnce()
    {
        var op = Take();
        if (op is null)
        {
            // Nothing queued: commit the batch if its time is up (or, synced, at once), else do compaction work.
            if (_batch is not null)
            {
                CommitBatch(CommitDurabilityFor(forceSync: false));
            }
            else if (_compactions.Count > 0)
            {
                CompactionStep();
            }

            return true;
        }

        return Process(op);
    }

    /// <summary>Handles one taken request, then commits the batch when full (or, synced, when nothing more is queued) and does one compaction step between batches; false for the stop request.</summary>
    private bool Process(WriteOp op)
    {
        if (op.Kind == WriteOpKind.Stop)
        {
            if (_batch is not null)
            {
                CommitBatch(CommitDurability.Synced);
            }

            FailCompactionWaiters(new ObjectDisposedException(nameof(MvccStore)));
            op.Complete();
            return false;
        }

        if (_state.Failure is { } failure)
        {
            op.Fail(new StorageFaultedException(_state.Path, failure));
            return true;
        }

        Handle(op);
        if (_batch is not null && (_batchWrites >= _state.Options.BatchLimit || (_synced && QueueIsEmpty())))
        {
            CommitBatch(CommitDurabilityFor(forceSync: false));
        }

        // Between batches, one step of compaction work, so writers never wait for more than one.
        if (CompactionStepIsDueBetweenBatches)
        {
            CompactionStep();
        }

        return true;
    }

    private WriteOp? Take()
    {
        if (_taken.Count > 0)
        {
            return _taken.Dequeue();
        }

        lock (_queueGate)
        {
            while (_queue.Count == 0)
            {
                if (_batch is not null)
                {
                    if (_synced)
                    {
                        return null;
                    }

                    var remaining = _state.Options.BatchInterval - _clock.GetElapsedTime(_batchStartedTimestamp);
                    if (remaining <= TimeSpan.Zero)
                    {
                        return null;
                    }

                    WaitForRequest(remaining);
                    continue;
                }

                if (_compactions.Count > 0 && _state.Failure is null)
                {
                    return null;
                }

                WaitForRequest(Timeout.InfiniteTimeSpan);
            }

            (_queue, _taken) = (_taken, _queue);
        }

        CommitBatchIfDueBeforeSlice();
        return _taken.Dequeue();
    }

    /// <summary>
    /// Called once per slice of requests taken from the queue, before the first is handled: commits
    /// a no-sync batch that is <see cref="MvccStoreOptions.BatchInterval"/> old, then does one
    /// compaction step (between batches, as after a full batch). Without it a writer whose queue
    /// never empties (steady load) would commit only at <see cref="MvccStoreOptions.BatchLimit"/>
    /// writes, holding the data and the consistent index uncommitted far longer than the interval
    /// promises; etcd's backend commits its batch by interval whatever the load. The clock is read
    /// once per slice (one timestamp for all the requests queued meanwhile), not per write, so a
    /// batch is committed at most one slice's work after its interval. Synced batches are not
    /// timed: they commit as soon as nothing is queued.
    /// </summary>
    private void CommitBatchIfDueBeforeSlice()
    {
        if (_synced || _batch is null || _clock.GetElapsedTime(_batchStartedTimestamp) < _state.Options.BatchInterval)
        {
            return;
        }

        CommitBatch(CommitDurability.NoSync);
        if (CompactionStepIsDueBetweenBatches)
        {
            CompactionStep();
        }
    }

    /// <summary>Waits (holding <see cref="_queueGate"/>) for <see cref="Enqueue"/> to pulse; it pulses only while this waits.</summary>
    private void WaitForRequest(TimeSpan timeout)
    {
        _writerWaiting = true;
        try
        {
            Monitor.Wait(_queueGate, timeout);
        }
        finally
        {
            _writerWaiting = false;
        }
    }

    private bool QueueIsEmpty()
    {
        if (_taken.Count > 0)
        {
            return false;
        }

        lock (_queueGate)
        {
            return _queue.Count == 0;
        }
    }

    private CommitDurability CommitDurabilityFor(bool forceSync) => _synced || forceSync ? CommitDurability.Synced : CommitDurability.NoSync;

    private void Handle(WriteOp op)
    {
        WriteTransaction? transaction = null;
        try
        {
            switch (op.Kind)
            {
                case WriteOpKind.Put:
                case WriteOpKind.DeleteRange:
                case WriteOpKind.Txn:
                    CheckConsistentIndex(op.ConsistentIndex);
                    EnsureBatch();
                    transaction = _transaction!.Begin();
                    if (op.Request is PutRequest { PrevKv: false } plainPut)
                    {
                        // Answered by its revision alone: the caller's response objects are built
                        // when it takes the result, not here (they would live until the commit).
                        op.AnswerPutWithRevision(transaction.PutAnsweredByRevision(plainPut));
                    }
                    else
                    {
                        op.Result = op.Request switch
                        {
                            PutRequest put => transaction.Put(put),
                            DeleteRangeRequest delete => transaction.DeleteRange(delete),
                            TxnRequest txn => (object)transaction.Txn(txn),
                            _ => throw new InvariantViolationException("MVCC writer: a write op without a request."),
                        };
                    }

                    op.DropRequest(); // not kept alive until the batch commits
                    NotifyWatches(transaction);
                    AdvanceConsistentIndex(op.ConsistentIndex);
                    Applied(op);
                    break;
                case WriteOpKind.LeaseGrant:
                case WriteOpKind.LeaseRevoke:
                    // Leases change in the same batch as the data, so a crash keeps both or neither.
                    CheckConsistentIndex(op.ConsistentIndex);
                    EnsureBatch();
                    transaction = _transaction!.Begin();
                    op.Result = op.Request switch
                    {
                        Leases.LeaseGrantOp grant => Leases.LeaseApplier.Grant(_state, _batch!, grant),
                        Leases.LeaseRevokeOp revoke => (object)Leases.LeaseApplier.Revoke(_state, _batch!, transaction, revoke),
                        _ => throw new InvariantViolationException("MVCC writer: a lease op without a request."),
                    };

                    // A revocation's deletes reach watchers as any delete's do.
                    NotifyWatches(transaction);
                    AdvanceConsistentIndex(op.ConsistentIndex);
                    Applied(op);
                    break;
                case WriteOpKind.LeaseKeepAlive:
                    CheckConsistentIndex(op.ConsistentIndex);
                    op.Result = Leases.LeaseApplier.KeepAlive(_state, (long)op.Request!, (long)op.ConsistentIndex, () =>
                    {
                        EnsureBatch();
                        return _batch!;
                    });
                    if (op.ConsistentIndex == 0)
                    {
                        // Nothing to write: no batch to wait for.
                        op.Complete();
                        break;
                    }

                    EnsureBatch();
                    AdvanceConsistentIndex(op.ConsistentIndex);
                    Applied(op);
                    break;
                case WriteOpKind.Checkpoint:
                    Checkpoint(op);
                    break;
                case WriteOpKind.Restore:
                    Restore(op, (PreparedRestore)op.Request!);
                    break;
                case WriteOpKind.ConsistentIndex:
                    CheckConsistentIndex(op.ConsistentIndex);
                    EnsureBatch();
                    AdvanceConsistentIndex(op.ConsistentIndex);
                    Applied(op);
                    break;
                case WriteOpKind.ReplicaMeta:
                    // Replication state (the member registry) changes in the same batch as the
                    // data, under the same consistent index: a crash keeps both or neither.
                    CheckConsistentIndex(op.ConsistentIndex);
                    EnsureBatch();
                    var (metaKey, metaValue) = op.Request as Tuple<byte[], byte[]?> ?? throw new InvariantViolationException("MVCC writer: a replica meta op without its key.");
                    var replica = _batch!.CreateBucketIfNotExists(MetaKeys.ReplicaBucket);
                    if (metaValue is null)
                    {
                        replica.Delete(metaKey);
                    }
                    else
                    {
                        replica.Put(metaKey, metaValue);
                    }

                    op.Request = null;
                    AdvanceConsistentIndex(op.ConsistentIndex);
                    Applied(op);
                    break;
                case WriteOpKind.PutRun:
                    HandlePutRun(op, op.Request as Replication.ReplicatedPutRun ?? throw new InvariantViolationException("MVCC writer: a put run op without its run."));
                    break;
                case WriteOpKind.ConsistentIndexAtLeast:
                    // The end of an applied Raft batch whose last entry may already have moved the
                    // index there (a write), or not (a refused write, a configuration change).
                    if (op.ConsistentIndex > _state.ConsistentIndex)
                    {
                        EnsureBatch();
                        AdvanceConsistentIndex(op.ConsistentIndex);
                        Applied(op);
                    }
                    else
                    {
                        op.Complete();
                    }

                    break;
                case WriteOpKind.Compact:
                    Compact(op);
                    break;
                case WriteOpKind.Sync:
                    // The consistent index durable once this completes: the batch committed now
                    // holds it, or (no batch) the last commit, which the sync below makes durable.
                    op.Result = _state.ConsistentIndex;
                    if (_batch is not null)
                    {
                        _awaitingCommit.Add(op);
                        CommitBatch(CommitDurability.Synced);
                    }
                    else
                    {
                        _state.Database.Sync();
                        op.Complete();
                    }

                    break;
                case WriteOpKind.AwaitCompactions:
                    if (_compactions.Count == 0)
                    {
                        op.Complete();
                    }
                    else
                    {
                        _compactions.Last().Waiters.Add(op);
                    }

                    break;
                default:
                    throw new InvariantViolationException($"MVCC writer: unexpected op {op.Kind}.");
            }
        }
        catch (Exception e) when (e is MvccException or ArgumentException && transaction?.HasChanged != true)
        {
            // A refusal: nothing was changed.
            op.Fail(e);
        }
        catch (Exception e)
        {
            _awaitingCommit.Add(op);
            Fault(e);
        }
    }

    /// <summary>
    /// A run of plain puts from the replicated apply path (no-sync stores only): each applied as a
    /// <see cref="WriteOpKind.Put"/> answered by its revision is (its entry's index checked and
    /// recorded, watches told, the batch committed when full), its revision or refusal recorded in
    /// the run; the op completes once all are. Anything but a refusal faults the store, as in
    /// <see cref="Handle"/>.
    /// </summary>
    private void HandlePutRun(WriteOp op, Replication.ReplicatedPutRun run)
    {
        try
        {
            if (_synced)
            {
                throw new InvariantViolationException("MVCC writer: a put run is for a no-sync store under Raft (its puts are answered before any commit).");
            }

            for (int i = 0; i < run.Count; i++)
            {
                ulong index = run.IndexAt(i);
                CheckConsistentIndex(index);

                EnsureBatch();
                var transaction = _transaction!.Begin();
                try
                {
                    run.Answer(i, transaction.PutAnsweredByRevision(run.RequestAt(i)));
                }
                catch (Exception e) when (e is MvccException or ArgumentException && !transaction.HasChanged)
                {
                    // A refusal: nothing was changed (its index is covered by the batch's last one).
                    run.Refuse(i, e);
                    continue;
                }

                NotifyWatches(transaction);
                AdvanceConsistentIndex(index);
                _batchWrites++;
                if (_batchWrites >= _state.Options.BatchLimit)
                {
                    CommitBatch(CommitDurability.NoSync);
                    if (_state.Failure is { } failure)
                    {
                        op.Fail(new StorageFaultedException(_state.Path, failure));
                        return;
                    }
                }
            }
        }
        catch (Exception e)
        {
            _awaitingCommit.Add(op);
            Fault(e);
            return;
        }

        op.Request = null;
        op.Complete();
    }

    /// <summary>A write is answered when durable (synced) or now (no-sync); either way it counts towards the batch.</summary>
    private void Applied(WriteOp op)
    {
        _batchWrites++;
        if (_synced)
        {
            _awaitingCommit.Add(op);
        }
        else
        {
            op.Complete();
        }
    }

    private void CheckConsistentIndex(ulong consistentIndex)
    {
        if (consistentIndex != 0 && consistentIndex <= _state.ConsistentIndex)
        {
            throw new ArgumentOutOfRangeException(nameof(consistentIndex), consistentIndex, $"The consistent index must grow: the store has applied index {_state.ConsistentIndex}.");
        }
    }

    private void AdvanceConsistentIndex(ulong consistentIndex)
    {
        if (consistentIndex != 0)
        {
            Volatile.Write(ref _state.ConsistentIndex, consistentIndex);
            _consistentIndexChanged = true;
        }
    }

    private void EnsureBatch()
    {
        if (_batch is not null)
        {
            return;
        }

        _batch = _state.Database.BeginWrite();
        _keys = _batch.OpenBucket(MetaKeys.KeyBucket) ?? throw new InvariantViolationException("MVCC writer: the key bucket is missing.");
        _transaction = new WriteTransaction(_state, _keys);
        _batchWrites = 0;
        _batchStartedTimestamp = _clock.GetTimestamp();
    }

    private void CommitBatch(CommitDurability durability)
    {
        var batch = _batch ?? throw new InvariantViolationException("MVCC writer: commit without a batch.");
        try
        {
            if (_consistentIndexChanged)
            {
                var meta = batch.OpenBucket(MetaKeys.MetaBucket) ?? throw new InvariantViolationException("MVCC writer: the meta bucket is missing.");
                meta.Put(MetaKeys.ConsistentIndexKey, BigEndian((long)_state.ConsistentIndex));
                _consistentIndexChanged = false;
            }

            _batch = null;
            _keys = null;
            _transaction = null;
            batch.Commit(durability);
        }
        catch (Exception e)
        {
            batch.Dispose();
            Fault(e);
            return;
        }

        Volatile.Write(ref _batchesCommitted, _batchesCommitted + 1);

        // Synced: the batch's revisions are durable; watches see them before their writers are
        // answered, and before the swap below lets the next batch reuse the buffers their values
        // are read from.
        _watches.Committed(_state.Pending);

        // Only now may readers stop looking in the batch: its revisions are in the B+tree.
        _state.IndexLock.EnterWriteLock();
        try
        {
            // The shared read view is valid only while its batch is current (SharedReadView).
            SharedReadView.Retire(_state);
            _state.Pending = _state.Pending.Next();
        }
        finally
        {
            _state.IndexLock.ExitWriteLock();
        }

        foreach (var op in _awaitingCommit)
        {
            op.Complete();
        }

        _awaitingCommit.Clear();
    }

    /// <summary>Hands the revision <paramref name="transaction"/> wrote (if it changed anything) to the watches.</summary>
    private void NotifyWatches(WriteTransaction transaction)
    {
        long revision = transaction.End();
        if (transaction.Changes > 0)
        {
            _watches.Applied(revision, transaction.Changes, _state.Pending);
        }
    }

    private void Fault(Exception e)
    {
        _state.SetFailure(e);
        _watches.Faulted(e);
        _batch?.Dispose();
        _batch = null;
        _keys = null;
        _transaction = null;
        foreach (var op in _awaitingCommit)
        {
            op.Fail(e);
        }

        _awaitingCommit.Clear();
        FailCompactionWaiters(new StorageFaultedException(_state.Path, e));
    }

    private void FailCompactionWaiters(Exception e)
    {
        foreach (var job in _compactions)
        {
            foreach (var waiter in job.Waiters)
            {
                waiter.Fail(e);
            }
        }

        _compactions.Clear();
    }

    // ------------------------------------------------------------ snapshot images

    /// <summary>
    /// Commits the open batch (no-sync under Raft: the log is the durability) and begins a read
    /// transaction on that commit, which therefore holds exactly the writes applied so far and the
    /// consistent index stored with them.
    /// </summary>
    private void Checkpoint(WriteOp op)
    {
        if (_batch is not null)
        {
            CommitBatch(CommitDurabilityFor(forceSync: false));
        }

        if (_state.Failure is { } failure)
        {
            op.Fail(new StorageFaultedException(_state.Path, failure));
            return;
        }

        op.Result = new Checkpoint(_state.Database.BeginRead(), _state.ConsistentIndex, _state.Revision, _state.CompactRevision);
        op.Complete();
    }

    /// <summary>
    /// Swaps the store's B+tree file for the restored one beside it (docs/architecture.md, "Snapshot
    /// images"): commit what is applied, stop new readers (index write lock), wait for the readers
    /// already in the old file, close it, rename the new file over it and sync the directory (the
    /// one atomic step: a crash before it leaves the old store, after it the new one), reopen it and
    /// adopt the state rebuilt from it. Then the watches move to catching up from the new history.
    /// </summary>
    private void Restore(WriteOp op, PreparedRestore prepared)
    {
        if (_batch is not null)
        {
            CommitBatch(CommitDurabilityFor(forceSync: false));
        }

        if (_state.Failure is { } failure)
        {
            op.Fail(new StorageFaultedException(_state.Path, failure));
            return;
        }

        // The old history's compactions are moot; their physical waiters are done with it.
        foreach (var job in _compactions)
        {
            foreach (var waiter in job.Waiters)
            {
                waiter.Complete();
            }
        }

        _compactions.Clear();
        Exception? error = null;
        BTreeDatabase? opened = null;
        _state.IndexLock.EnterWriteLock();
        try
        {
            var old = _state.Database;
            SharedReadView.Retire(_state);
            old.WaitForNoReaders();
            old.Dispose();
            prepared.FileSystem.Rename(prepared.IncomingPath, _state.Path);
            prepared.FileSystem.SyncDirectory(prepared.Directory);
            opened = BTreeDatabase.Open(prepared.FileSystem, _state.Path, prepared.BTreeOptions);
            _state.Adopt(prepared.Loaded, opened);
        }
        catch (Exception e)
        {
            opened?.Dispose();
            error = e;
        }
        finally
        {
            _state.IndexLock.ExitWriteLock();
        }

        if (error is not null)
        {
            // The old file is closed: the store cannot go on. On disk it is the old or the new store, whole.
            Fault(error);
            op.Fail(error);
            return;
        }

        foreach (var job in prepared.Resumed)
        {
            _compactions.Enqueue(job);
        }

        _watches.Restored(_state.Revision);
        op.Complete();
    }

    // ------------------------------------------------------------ compaction

    /// <summary>etcd's <c>updateCompactRev</c>: refuse compacted or future revisions, make the scheduled mark durable, queue the job.</summary>
    private void Compact(WriteOp op)
    {
        long revision = op.CompactRevision;
        if (revision <= _state.CompactRevision)
        {
            throw new RevisionCompactedException(revision, _state.CompactRevision);
        }

        if (revision > _state.Revision)
        {
            throw new FutureRevisionException(revision, _state.Revision);
        }

        CheckConsistentIndex(op.ConsistentIndex);
        EnsureBatch();
        var meta = _batch!.OpenBucket(MetaKeys.MetaBucket) ?? throw new InvariantViolationException("MVCC writer: the meta bucket is missing.");
        meta.Put(MetaKeys.ScheduledCompactKey, BigEndian(revision));
        _state.IndexLock.EnterWriteLock();
        try
        {
            // From here reads below the revision fail, though the index and B+tree still hold them.
            Volatile.Write(ref _state.CompactRevision, revision);
        }
        finally
        {
            _state.IndexLock.ExitWriteLock();
        }

        AdvanceConsistentIndex(op.ConsistentIndex);
        op.Result = new CompactResponse { Header = new ResponseHeader { Revision = _state.Revision } };
        var job = new CompactionJob(revision);
        _compactions.Enqueue(job);
        _batchWrites++;
        if (op.Physical)
        {
            job.Waiters.Add(op);
        }
        else
        {
            _awaitingCommit.Add(op);
        }

        // As etcd's ForceCommit: the scheduled mark is committed now (with the writes before it).
        CommitBatch(CommitDurabilityFor(forceSync: false));
    }

    private void CompactionStep()
    {
        var job = _compactions.Peek();
        try
        {
            if (job.NextIndexKey is { } from)
            {
                CompactIndexStep(job, from);
            }
            else if (CompactStoredStep(job))
            {
                _compactions.Dequeue();
                foreach (var waiter in job.Waiters)
                {
                    waiter.Complete();
                }
            }
        }
        catch (Exception e)
        {
            Fault(e);
        }
    }

    private void CompactIndexStep(CompactionJob job, byte[] from)
    {
        int limit = _state.Options.CompactionBatchLimit;
        _state.IndexLock.EnterWriteLock();
        try
        {
            job.NextIndexKey = _state.Index.Compact(from, limit, job.Revision, job.Keep);
        }
        finally
        {
            _state.IndexLock.ExitWriteLock();
        }
    }

    /// <summary>Deletes one batch of compacted revisions; true when this was the last (it wrote the finished mark).</summary>
    private bool CompactStoredStep(CompactionJob job)
    {
        int limit = _state.Options.CompactionBatchLimit;
        var tx = _state.Database.BeginWrite();
        try
        {
            var keys = tx.OpenBucket(MetaKeys.KeyBucket) ?? throw new InvariantViolationException("MVCC writer: the key bucket is missing.");
            var candidates = new List<byte[]>();
            var cursor = keys.CreateCursor();
            for (bool more = cursor.Seek(job.NextStoredKey); more && candidates.Count < limit; more = cursor.Next())
            {
                if (!RevisionKey.TryDecode(cursor.Key, out var revision, out _))
                {
                    throw new CorruptionException(_state.Path, 0, $"the revision bucket holds a malformed key {MvccText.Show(cursor.Key)}");
                }

                if (revision.Main > job.Revision)
                {
                    break;
                }

                candidates.Add(cursor.Key.ToArray());
            }

            foreach (var key in candidates)
            {
                RevisionKey.TryDecode(key, out var revision, out _);
                if (!job.Keep.Contains(revision))
                {
                    keys.Delete(key);
                }
            }

            bool finished = candidates.Count < limit;
            if (finished)
            {
                var meta = tx.OpenBucket(MetaKeys.MetaBucket) ?? throw new InvariantViolationException("MVCC writer: the meta bucket is missing.");
                meta.Put(MetaKeys.FinishedCompactKey, BigEndian(job.Revision));
            }
            else
            {
                job.NextStoredKey = [.. candidates[^1], 0];
            }

            tx.Commit(CommitDurabilityFor(forceSync: false));
            return finished;
        }
        catch
        {
            tx.Dispose();
            throw;
        }
    }

    private static byte[] BigEndian(long value)
    {
        var bytes = new byte[8];
        BinaryPrimitives.WriteInt64BigEndian(bytes, value);
        return bytes;
    }
}
