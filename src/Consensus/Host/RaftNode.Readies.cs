using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Host;

/// <content>
/// Ready handling: each Ready's messages sent, its entries and hard state written (one write in
/// flight), its committed entries handed to the apply pipeline, and the node advanced once the write is done.
/// </content>
public sealed partial class RaftNode<TResult>
{
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
}
