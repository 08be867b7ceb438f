using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Host;

/// <content>
/// Proposals and reads: callers' commands batched into the core, refusals, overwrites and
/// timeouts turned into their exceptions, and what waits on the applied index (reads, membership changes) completed.
/// </content>
public sealed partial class RaftNode<TResult>
{
    private void OnProposalCancelled(PendingProposal<TResult> pending, CancellationToken token)
    {
        // Withdrawn before the loop proposed it: it never reaches the log. After: the entry may
        // still be applied; only the wait ends.
        pending.TryWithdraw();
        _proposals.TryRemove(pending.RequestId, out _);
        pending.Cancel(token);
    }

    // By request id, never by a PendingProposal held since an earlier look: one answered since may
    // already be reused by a later call (PendingProposal's pooling), which must not be failed.
    private void FailProposal(ulong requestId, Exception error)
    {
        if (_proposals.TryRemove(requestId, out var pending))
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

    private void ProposeBatch(List<PendingProposal<TResult>> batch)
    {
        // Loop-owned lists, reused turn after turn (the core copies the commands into its own
        // entries before ProposeBatch returns); emptied on the way out, so they keep nothing alive.
        var commands = _proposedCommands;
        var proposed = _proposedBatch;
        try
        {
            ProposeMarked(batch, commands, proposed);
        }
        finally
        {
            commands.Clear();
            proposed.Clear();
        }
    }

    private void ProposeMarked(List<PendingProposal<TResult>> batch, List<ReadOnlyMemory<byte>> commands, List<PendingProposal<TResult>> proposed)
    {
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

        // Marked before the core sees them: once proposed, nothing here touches them again.
        var isLeader = _raw.SoftState.Role == StateRole.Leader;
        foreach (var p in proposed)
        {
            p.ProposedAsLeader = isLeader;
            if (!isLeader)
            {
                p.DeadlineTick = _tick + _proposalTimeoutTicks;
            }
        }

        try
        {
            _raw.ProposeBatch(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(commands));
        }
        catch (ProposalDroppedException e)
        {
            foreach (var p in proposed)
            {
                FailProposal(p.RequestId, Refusal(e));
            }

            return;
        }

        _metrics.Proposed(commands.Count);
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

    private void OnApplied(ulong index)
    {
        _loopAppliedIndex = Math.Max(_loopAppliedIndex, index);
        _reads.CompleteUpTo(_loopAppliedIndex);
        var applied = 0;
        while (applied < _ownEntries.Count && _ownEntries[applied].Index <= _loopAppliedIndex)
        {
            applied++;
        }

        _ownEntries.RemoveFirst(applied);

        if (_confChanges.TryPeek(out var change) && change.Index != 0 && change.Index <= _loopAppliedIndex)
        {
            change.Completion.TrySetResult(change.Result!);
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
                && origin == Id)
            {
                FailProposal(requestId, Refusal(refused.Refusal));
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
        if (_ownEntries.Count > 0 && _ownEntries[_ownEntries.Count - 1].Index >= first)
        {
            var keep = _ownEntries.Count;
            while (keep > 0 && _ownEntries[keep - 1].Index >= first)
            {
                keep--;
            }

            for (var i = keep; i < _ownEntries.Count; i++)
            {
                var (index, requestId) = _ownEntries[i];
                var offset = index - first;
                var kept = offset < (ulong)entries.Length
                    && ProposalEnvelope.TryDecode(entries[(int)offset].Data, out var origin, out var id, out _)
                    && origin == Id && id == requestId;
                if (!kept && _proposals.TryGetValue(requestId, out var pending) && pending.ProposedAsLeader)
                {
                    // Proposed here as leader, so appended once only: this copy was the one.
                    FailProposal(requestId, new ProposalDroppedException(ProposalDropReason.Overwritten));
                }
            }

            _ownEntries.KeepFirst(keep);
        }

        foreach (var e in entries)
        {
            if (e.Type == EntryType.Normal && ProposalEnvelope.TryDecode(e.Data, out var origin, out var requestId, out _) && origin == Id)
            {
                if (_ownEntries.Count > 0 && _ownEntries[_ownEntries.Count - 1].Index >= e.Index)
                {
                    throw new InvariantViolationException($"Node {Id}: its own entry at index {e.Index} follows one at {_ownEntries[_ownEntries.Count - 1].Index}: own entries must be tracked in index order.");
                }

                _ownEntries.Add((e.Index, requestId));
            }
        }
    }
}
