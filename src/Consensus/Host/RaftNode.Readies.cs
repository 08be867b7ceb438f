using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Host;

/// <content>
/// Ready handling: each Ready's messages sent, its entries and hard state written (several writes
/// may be in flight, made durable in order by the sync pipeline), its committed entries handed to the
/// apply pipeline, and the node advanced once the write is durable.
/// </content>
public sealed partial class RaftNode<TResult>
{
    private async Task DriveReadiesAsync()
    {
        while (true)
        {
            // Compaction writes the WAL too, and the log's mutating calls are made one at a time:
            // only with no Ready being written. Pending compactions stop new Readies until the
            // pipeline has drained (they are rare: one per snapshot).
            if (_compactions.Count > 0 && _readiesInFlight.Count > 0)
            {
                return;
            }

            while (_compactions.TryDequeue(out var compaction))
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

            if (_raw.OutstandingReadies > 0)
            {
                // Appends and heartbeats need no Ready of their own while others are being written:
                // out now, so that a Ready is taken only for what must be written or applied.
                Send(_raw.TakeMessagesBeforePersist());
            }

            if (Volatile.Read(ref _queuedApplies) >= MaxQueuedApplies)
            {
                return;
            }

            if (!_raw.HasReady())
            {
                // Nothing held back: no last call needed.
                if (Volatile.Read(ref _loopHoldsBackReadies) != 0)
                {
                    Volatile.Write(ref _loopHoldsBackReadies, 0);
                }

                return;
            }

            if (HoldsBackForRunningWrite())
            {
                // Group commit: a Ready written while another is being made durable would wait for
                // that fsync to end anyway, and what arrives meanwhile (a follower's appends, a
                // leader's proposals and commits) would then miss the next fsync. So it gathers in
                // the core and goes out as one Ready when the running write is reported durable, or
                // at the sync pipeline's last call before its next fsync (OnLastCall): one Ready,
                // one write and one hand-back per fsync, and every arrival rides the first fsync
                // that starts after it. Messages needing no persistence still go out every turn.
                return;
            }

            var rd = _raw.GetReady();
            Volatile.Write(ref _loopHoldsBackReadies, 0);
            if (rd.HardState is not null)
            {
                // Before its committed entries go to the applier: a caller answered sees its commit in Status.
                PublishCommitState();
            }

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

            var mustWrite = rd.Snapshot is not null || rd.HardState is not null || !rd.Entries.IsEmpty;
            if (!mustWrite && _readiesInFlight.Count == 0)
            {
                // Nothing to write and nothing being written: everything this Ready's messages
                // promise is durable already.
                if (!rd.CommittedEntries.IsEmpty)
                {
                    EnqueueCommitted(rd.CommittedEntries);
                }

                Send(rd.MessagesAfterPersist);
                _raw.Advance();
                if (!rd.CommittedEntries.IsEmpty)
                {
                    PublishCommitState();
                }

                continue;
            }

            await WriteAsync(rd);
            _lastCallOpen = false;
            if (rd.Snapshot is { } snapshot)
            {
                _handedOutConf = snapshot.ConfState;
                EnqueueApply(new RestoreWork(snapshot, _readiesInFlight[^1].Durable));
                RaftNodeLog.InstallingSnapshot(_logger, Id, snapshot.Index, snapshot.Term);
            }

            if (!rd.CommittedEntries.IsEmpty)
            {
                EnqueueCommitted(rd.CommittedEntries);
            }

            if (!rd.Entries.IsEmpty)
            {
                _metrics.ReadyPersisted(rd.Entries.Length);
            }
        }
    }

    /// <summary>
    /// Hands a Ready's snapshot marker, entries and hard state to the log (unsynced: the records
    /// are in the write-ahead log's buffers when this returns) and queues it to the sync pipeline,
    /// which makes it durable, sends its <see cref="Ready.MessagesAfterPersist"/> and reports it
    /// back. The next Ready may be written while this one's fsync runs (the write-ahead log's group
    /// commit merges them); Readies become durable, and are advanced, in the order written. A Ready
    /// with nothing to write still goes through the pipeline when others are in it: its
    /// acknowledgements may promise entries an earlier Ready is still writing.
    /// </summary>
    private async Task WriteAsync(Ready rd)
    {
        if (rd.Snapshot is { } snapshot)
        {
            // Durable when it completes. The core hands out no other Ready beside a snapshot, so
            // nothing else is being written.
            await _log.ApplySnapshotAsync(snapshot);
        }

        if (rd.HardState is not null || !rd.Entries.IsEmpty)
        {
            await _log.SaveAsync(rd.HardState, rd.Entries, sync: false);
        }

        if (_acknowledgeBeforeFsync)
        {
            // Broken on purpose (simulator tests only): a follower acknowledges appends and votes before its fsync.
            SendFromSyncPipeline(EarlyAcknowledgements(rd.MessagesAfterPersist, early: true));
        }

        var durable = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _readiesInFlight.Add((rd, durable.Task));
        Interlocked.Increment(ref _readiesWritten);
        if (!_syncQueue.TryPost(new SyncItem(rd, durable)))
        {
            // Stopping: the loop ends at its next take; whatever waits on this write gives up.
            durable.TrySetException(Stopped());
        }
    }

    /// <summary>
    /// Whether this node leads and its followers' acknowledgements committed entries it already
    /// holds durably: then the loop takes a Ready even while a written one is being made durable,
    /// so that those entries go to the applier now rather than one fsync later (the callers
    /// waiting on them are the latency that counts; a Ready more per acknowledgement round costs
    /// no fsync, the sync pipeline takes every queued write at once). Followers keep gathering:
    /// their commits arrive with every append, so a follower's held Ready takes them one fsync
    /// later. Callers can wait on a follower's apply (a proposal made on a follower, such as a
    /// replicated store's put, completes once applied there), but taking a follower's durable
    /// commits at once was measured in session 24 (docs/benchmarks.md, "Replicated puts,
    /// session 24") and did not shorten its commit wait, which is the leader's fsync and the
    /// round trip, not this hold.
    /// A heuristic only: an entry still being written waits for its write in the apply pipeline
    /// whatever this says (<see cref="PendingWriteOf"/>).
    /// </summary>
    private bool LeaderHasDurableCommitsToApply() =>
        _role == StateRole.Leader && _raw.HasCommittedEntriesUpTo(Volatile.Read(ref _persistedIndex));

    /// <summary>
    /// Whether the loop holds back the next Ready: a written one is still being made durable, and
    /// neither the sync pipeline's last call is open nor is there something the loop must hand out
    /// now — a leader's commits it holds durably (<see cref="LeaderHasDurableCommitsToApply"/>),
    /// read states (a linearizable read would otherwise wait for an fsync that has nothing to do
    /// with it), or a role change, a new term or vote, or a refused proposal
    /// (<see cref="RawNode.HasUrgentReady"/>: an election or a caller's error would otherwise wait
    /// for the running write's report before its own write starts). When it holds back, it says so
    /// to the sync pipeline, which then makes its last call before its next fsync (a hint only: a
    /// last call missed costs latency, never a lost wake-up, since the running write's report wakes
    /// the loop anyway).
    /// </summary>
    private bool HoldsBackForRunningWrite()
    {
        if (_readiesInFlight.Count == 0 || _lastCallOpen || LeaderHasDurableCommitsToApply() || _raw.HasReadStates || _raw.HasUrgentReady)
        {
            return false;
        }

        if (_raw.HasEntriesToWrite)
        {
            // Only new entries are worth a last call (a commit index or an acknowledgement held
            // back costs the fsync nothing): one loop turn before every fsync costs more than it
            // saves when batches are small.
            Volatile.Write(ref _loopHoldsBackReadies, 1);
        }

        return true;
    }

    /// <summary>
    /// Sync pipeline side: about to start an fsync while the loop holds back a Ready, it asks the
    /// loop to write that Ready first (one loop turn), so that the fsync covers everything that
    /// arrived before it starts rather than leaving it for the one after. True when the loop wrote
    /// something (then queued to the sync pipeline).
    /// </summary>
    private async ValueTask<bool> MakeLastCallAsync()
    {
        if (Interlocked.Exchange(ref _loopHoldsBackReadies, 0) == 0)
        {
            return false;
        }

        var call = new LastCallInput(new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously));
        Volatile.Write(ref _pendingLastCall, call.Answered);
        if (!_inbox.TryPost(call))
        {
            // Stopping: the loop takes nothing more.
            return false;
        }

        return await call.Answered.Task;
    }

    /// <summary>Loop side of the last call: takes and writes the Ready it held back (one, at most), then answers.</summary>
    private async Task OnLastCallAsync(LastCallInput call)
    {
        var written = Volatile.Read(ref _readiesWritten);
        _lastCallOpen = true;
        try
        {
            await DriveReadiesAsync();
        }
        finally
        {
            _lastCallOpen = false;
            call.Answered.TrySetResult(Volatile.Read(ref _readiesWritten) != written);
        }
    }

    /// <summary>
    /// The sync pipeline: a sequential consumer that takes every Ready written since its last turn,
    /// makes them durable with one <see cref="Log.DurableRaftLog.SyncAsync"/> (off the loop, which
    /// meanwhile keeps stepping, proposing and writing), then, in order, sends each one's
    /// <see cref="Ready.MessagesAfterPersist"/> at once — a follower acknowledges right after its
    /// fsync instead of waiting for a loop turn — releases the applies waiting on it and reports it to
    /// the loop, which advances the core.
    /// </summary>
    private async Task RunSyncAsync()
    {
        Exception? failure = null;
        var items = new List<SyncItem>();
        while (true)
        {
            var (taken, _, closed) = await _syncQueue.TakeAsync();
            items.Clear();
            items.AddRange(taken);
            if (!closed && failure is null && await MakeLastCallAsync())
            {
                // The loop wrote what it held back: queued already, so this take does not wait.
                (taken, _, closed) = await _syncQueue.TakeAsync();
                items.AddRange(taken);
            }

            if (closed || failure is not null)
            {
                // Stopping, or a write failed: nothing more becomes durable, and whatever waits on
                // these writes (an apply) must give up rather than hang until disposal.
                foreach (var item in items)
                {
                    item.Durable.TrySetException(failure ?? Stopped());
                }

                if (closed)
                {
                    return;
                }

                continue;
            }

            if (items.Exists(static i => i.Ready.MustSync))
            {
                try
                {
                    await _log.SyncAsync();
                }
                catch (Exception e)
                {
                    failure = e;
                }
            }

            Message? heldAck = null;
            foreach (var item in items)
            {
                if (failure is null)
                {
                    // Raft Figure 2: acknowledgements and votes only once what they promise is durable.
                    SendAfterFsync(_acknowledgeBeforeFsync ? EarlyAcknowledgements(item.Ready.MessagesAfterPersist, early: false) : item.Ready.MessagesAfterPersist, ref heldAck);

                    item.Durable.TrySetResult();
                }
                else
                {
                    // Applies waiting on this write see the failure too (and never apply what is not durable).
                    item.Durable.TrySetException(failure);
                }

                item.Error = failure;
                _inbox.TryPost(item);
            }

            if (heldAck is not null)
            {
                SendOneFromSyncPipeline(heldAck);
            }
        }
    }

    /// <summary>
    /// Sends a synced Ready's <see cref="Ready.MessagesAfterPersist"/>, answering a run of appends
    /// with one acknowledgement: an accepting <see cref="MessageType.AppendResponse"/> is held in
    /// <paramref name="heldAck"/> and replaced by the next one when that goes to the same node in
    /// the same term and acknowledges at least as far (it then says all the held one said: the
    /// leader takes the highest match and frees its in-flight appends up to it); anything else sends
    /// the held one first, so the order of what is sent is kept. A busy follower that gathered many
    /// appends into one write (or several writes into one fsync) answers them with one message.
    /// Everything passed here is durable already, so holding an acknowledgement to the end of the
    /// sync pipeline's turn delays nothing that matters.
    /// </summary>
    private void SendAfterFsync(IReadOnlyList<Message> messages, ref Message? heldAck)
    {
        foreach (var m in messages)
        {
            var accepts = m.Type == MessageType.AppendResponse && !m.Reject;
            if (accepts && heldAck is { } held && held.To == m.To && held.Term == m.Term && held.Index <= m.Index)
            {
                heldAck = m;
                continue;
            }

            if (heldAck is not null)
            {
                SendOneFromSyncPipeline(heldAck);
                heldAck = null;
            }

            if (accepts)
            {
                heldAck = m;
            }
            else
            {
                SendOneFromSyncPipeline(m);
            }
        }
    }

    /// <summary>TestOnlyBrokenRules.AcknowledgeBeforeFsync: the append acknowledgements and votes to other nodes (sent early), or everything else (sent after the fsync).</summary>
    private List<Message> EarlyAcknowledgements(IReadOnlyList<Message> messages, bool early) =>
        messages.Where(m => (m.Type is MessageType.AppendResponse or MessageType.VoteResponse && m.To != Id) == early).ToList();

    private void SendFromSyncPipeline(IReadOnlyList<Message> messages)
    {
        foreach (var m in messages)
        {
            SendOneFromSyncPipeline(m);
        }
    }

    private void SendOneFromSyncPipeline(Message m)
    {
        try
        {
            _transport.Send(m);
        }
        catch (Exception e) when (e is not InvariantViolationException)
        {
            // Raft tolerates loss; a transport that throws only loses this message.
            Interlocked.Increment(ref _failedSends);
            RaftNodeLog.SendFailed(_logger, e, Id, m);
        }
    }

    private void OnPersisted(SyncItem persisted)
    {
        if (persisted.Error is { } error)
        {
            throw error;
        }

        var rd = persisted.Ready;
        if (_readiesInFlight.Count == 0 || !ReferenceEquals(_readiesInFlight[0].Ready, rd))
        {
            throw new InvariantViolationException($"Node {Id}: a Ready was reported durable out of the order it was written in.");
        }

        _readiesInFlight.RemoveAt(0);

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

        // Its MessagesAfterPersist went out from the sync pipeline; our own acknowledgement and
        // vote take effect now.
        _raw.Advance();
        if (!rd.CommittedEntries.IsEmpty)
        {
            PublishCommitState();
        }
    }

    /// <summary>
    /// The in-flight write that makes entry <paramref name="index"/> durable here, or null when it is
    /// durable already: the newest write whose entries start at or below it (a later one starting
    /// there would have replaced it, and a committed entry is never replaced). Readies become durable
    /// in order, so waiting for that one covers every earlier write — but not the newer ones, which a
    /// leader keeps adding: its committed entries apply after their own fsync, not the newest.
    /// </summary>
    private Task? PendingWriteOf(ulong index)
    {
        for (var i = _readiesInFlight.Count - 1; i >= 0; i--)
        {
            var (rd, durable) = _readiesInFlight[i];
            if (rd.Entries.IsEmpty || rd.Entries.Span[0].Index > index)
            {
                continue;
            }

            if (index > rd.Entries.Span[^1].Index)
            {
                throw new InvariantViolationException($"Node {Id}: entry {index} is not in the write that replaced the log from {rd.Entries.Span[0].Index} to {rd.Entries.Span[^1].Index}, nor in any later one.");
            }

            return durable;
        }

        return null;
    }

    private void EnqueueApply(ApplyWork work)
    {
        Interlocked.Increment(ref _queuedApplies);
        if (!_applyQueue.TryPost(work))
        {
            Interlocked.Decrement(ref _queuedApplies);
        }
    }

    private void EnqueueCommitted(ReadOnlyMemory<Entry> committed)
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

        // Entries this node has not made durable yet wait for the write that holds them before they
        // apply, so the state machine is never ahead of the local log (etcd's consistent index rule).
        var gate = PendingWriteOf(entries[^1].Index);
        EnqueueApply(new CommittedWork(committed, gate, _handedOutConf));
    }
}
