using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Storage;

namespace EmbeddedRaft.Consensus.Host;

/// <content>
/// The apply pipeline: committed entries applied to the state machine in order (after this node
/// made them durable), duplicates dropped, results handed to the callers, snapshots restored.
/// </content>
public sealed partial class RaftNode<TResult>
{
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

                for (var i = 0; i < items.Count; i++)
                {
                    switch (items[i])
                    {
                        case CommittedWork:
                            // Every committed batch queued behind this one goes to the state machine
                            // with it (ApplyCommittedAsync): one apply, one hand-off each way.
                            var end = CommittedRunEnd(items, i);
                            await ApplyCommittedAsync(items, i, end);
                            Interlocked.Add(ref _queuedApplies, -(end - i - 1));
                            i = end - 1;
                            break;
                        case RestoreWork restore:
                            await RestoreAsync(restore);
                            break;
                        case SnapshotRequest request:
                            TakeSnapshotIfDue(request.Force);
                            break;
                        case SendCaptureWork send:
                            CaptureForSend(send.Message);
                            break;
                        case var other:
                            throw new InvariantViolationException($"Unknown apply work {other.GetType().Name}.");
                    }

                    Interlocked.Decrement(ref _queuedApplies);
                }

                OnBatchApplied();
            }
        }
        catch (Exception e) when (!_stopping.IsCancellationRequested)
        {
            Stop(e);
        }
    }

    /// <summary>The applier's side of <see cref="ArmAppliedWake"/>: wakes the loop after a batch only when it waits for one.</summary>
    private void OnBatchApplied()
    {
        if (Interlocked.Exchange(ref _loopAwaitsApplier, 0) == 1)
        {
            _inbox.TryPost(new AppliedInput(_applierIndex));
        }
    }

    /// <summary>
    /// The end (exclusive) of the run of committed batches that starts at <paramref name="start"/>
    /// in one take of the apply queue: consecutive <see cref="CommittedWork"/> items (a restore, a
    /// snapshot request or a capture between them ends the run, so each still happens between the
    /// same two entries; so does a later batch whose write is not yet durable, so that no batch
    /// waits for a newer write than its own), whose entries together stay within
    /// <see cref="RaftOptions.MaxCommittedBytesPerReady"/> when that is set (the first batch always
    /// counts). The run is at most <see cref="MaxQueuedApplies"/> long, since no more are queued.
    /// </summary>
    private int CommittedRunEnd(List<ApplyWork> items, int start)
    {
        var limit = _options.Raft.MaxCommittedBytesPerReady;
        var bytes = EntryBytes(((CommittedWork)items[start]).Entries.Span);
        var end = start + 1;
        while (end < items.Count && items[end] is CommittedWork next)
        {
            // A later batch whose write is still running ends the run: the batches before it are
            // durable (or wait only for their own write) and must not wait for a newer write.
            if (next.Gate is { IsCompleted: false })
            {
                break;
            }

            bytes += EntryBytes(next.Entries.Span);
            if (limit != 0 && bytes > limit)
            {
                break;
            }

            end++;
        }

        return end;
    }

    private static ulong EntryBytes(ReadOnlySpan<Entry> entries)
    {
        ulong bytes = 0;
        foreach (var e in entries)
        {
            bytes += (ulong)e.Data.Length;
        }

        return bytes;
    }

    /// <summary>
    /// Applies the committed batches <paramref name="items"/>[<paramref name="start"/>..<paramref name="end"/>)
    /// (all <see cref="CommittedWork"/>, contiguous in the log, queued in order) as one batch of the
    /// state machine: when the applier falls behind, the batches queued meanwhile cost one apply,
    /// one hand-off to the state machine and one back, instead of one each. Each batch's entries
    /// wait for the write that holds them first (its gate), so nothing is applied before it is
    /// durable here.
    /// </summary>
    private async Task ApplyCommittedAsync(List<ApplyWork> items, int start, int end)
    {
        var last = (CommittedWork)items[end - 1];

        // Applier-owned lists, reused batch after batch: the state machine may use the batch only
        // until its apply completes (IStateMachine.ApplyAsync), and both are emptied before the
        // next one (the applier applies one batch at a time).
        var commands = _applyCommands;
        var origins = _applyOrigins;
        if (commands.Count != 0 || origins.Count != 0 || _applyRunEnds.Count != 0)
        {
            throw new InvariantViolationException($"Node {Id}: an apply started while the previous batch's commands were still held.");
        }

        var own = 0;
        try
        {
            long bytes = 0;
            ulong entryCount = 0;
            var firstIndex = ((CommittedWork)items[start]).Entries.Span[0].Index;
            for (var w = start; w < end; w++)
            {
                var work = (CommittedWork)items[w];
                if (work.Gate is { } gate)
                {
                    await gate;
                }

                entryCount += (ulong)work.Entries.Length;
                bytes += ParseCommitted(work.Entries.Span, commands, origins, ref own);
                _applyRunEnds.Add(commands.Count);
            }

            _applierConf = last.ConfAfter;
            var batch = new CommittedBatch(commands, firstIndex, _applierIndex, _applierTerm);
            var results = await _stateMachine.ApplyAsync(batch, _stopping.Token);
            if (results is null || results.Count != commands.Count)
            {
                throw new InvariantViolationException($"The state machine returned {results?.Count} results for {commands.Count} commands (batch ending at index {_applierIndex}).");
            }

            // Published before the callers are released: one that reads Status after its result sees it applied.
            Volatile.Write(ref _appliedIndex, _applierIndex);

            // One release per committed batch merged here, as when each was applied alone: the
            // releases run on as many pool threads as are free, so callers of a merged batch are not
            // all resumed one after another on one thread.
            var from = 0;
            foreach (var to in _applyRunEnds)
            {
                ProposalRelease<TResult>? release = null;
                for (var i = from; i < to; i++)
                {
                    if (origins[i].Origin == Id && _proposals.TryRemove(origins[i].RequestId, out var pending) && pending.TryClaimSuccess())
                    {
                        // Sized once: at most this node's own commands of the merged batch are released.
                        release ??= new ProposalRelease<TResult>(Math.Min(own, to - from));
                        release.Add(pending, results[i]);
                    }
                }

                release?.Queue(_scheduler, _releasesRunning);
                from = to;
            }

            _entriesSinceSnapshot += entryCount;
            _bytesSinceSnapshot += bytes;
        }
        finally
        {
            commands.Clear();
            origins.Clear();
            _applyRunEnds.Clear();
        }

        TakeSnapshotIfDue(force: false);
    }

    /// <summary>
    /// Adds a committed batch's proposals to the apply's <paramref name="commands"/> and their
    /// origins (duplicates dropped, counting this node's own in <paramref name="own"/>), advances the
    /// applier's index and term over every entry, and returns the entries' data bytes.
    /// </summary>
    private long ParseCommitted(ReadOnlySpan<Entry> entries, List<CommittedCommand> commands, List<(ulong Origin, ulong RequestId)> origins, ref int own)
    {
        long bytes = 0;
        foreach (var e in entries)
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
                if (origin == Id)
                {
                    own++;
                }
            }
        }

        return bytes;
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
            if (!await _dedup.ReadHeaderAsync(data, $"snapshot {snapshot.Index}", _stopping.Token))
            {
                // A leader always sends data (a durable state machine's is captured when it is sent).
                throw new CorruptionException($"snapshot {snapshot.Index}", 0, "a snapshot received from the leader carries no state machine data (a metadata-only snapshot is never sent)");
            }

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

    private abstract record ApplyWork;

    private sealed record CommittedWork(ReadOnlyMemory<Entry> Entries, Task? Gate, ConfState ConfAfter) : ApplyWork;

    private sealed record RestoreWork(SnapshotMetadata Metadata, Task Gate) : ApplyWork;

    private sealed record SnapshotRequest(bool Force) : ApplyWork;

    /// <summary>A durable state machine's snapshot for a follower: captured between two applies, then streamed (RaftNode.Snapshots.cs).</summary>
    private sealed record SendCaptureWork(Message Message) : ApplyWork;
}
