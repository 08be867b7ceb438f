using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport;
using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Consensus.Host;

/// <content>
/// The loop: every input (ticks, messages, proposals, reads, membership and transfer requests, the
/// write and apply pipelines' reports) is taken in turns by one task that owns the <see cref="RawNode"/>;
/// ticks expire deadlines, and role and leader changes are published here.
/// </content>
public sealed partial class RaftNode<TResult>
{
    private async Task RunLoopAsync()
    {
        Exception? failure = null;
        List<LoopItem>? lastTaken = null;
        LastCallInput? lastCall = null;
        try
        {
            while (true)
            {
                ArmAppliedWake();
                var (inputs, ticks, closed) = await _inbox.TakeAsync();
                lastTaken = inputs;
                if (closed)
                {
                    break;
                }

                CatchUpWithApplier();

                for (var i = 0; i < ticks; i++)
                {
                    _raw.Tick();
                    _tick++;
                    OnTick();
                }

                foreach (var item in inputs)
                {
                    if (item.Proposal is { } proposal)
                    {
                        _proposalBatch.Add(proposal);
                        continue;
                    }

                    if (item.Message is { } received)
                    {
                        Step(received);
                        continue;
                    }

                    var input = item.Input;
                    switch (input)
                    {
                        case StepBatchInput b:
                            foreach (var message in b.Messages)
                            {
                                Step(message);
                            }

                            if (b.Frames is { } frames)
                            {
                                _lentFrames.Record(frames, _raw.SoftState.Role == StateRole.Follower, _raw.Core.Log.LastIndex());
                            }

                            break;
                        case SyncItem persisted:
                            OnPersisted(persisted);
                            break;
                        case AppliedInput applied:
                            // The applier has taken every request posted before this (one take each):
                            // a peer still needing a snapshot may ask again.
                            _snapshotRequested = false;
                            OnApplied(applied.Index);
                            break;
                        case ReadsWaitingInput:
                            // Read callers joined while the loop may have been idle: StartReadRound below.
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
                        case LastCallInput call:
                            // Answered after this turn's inputs (proposals included) are in the core.
                            lastCall = call;
                            break;
                        case FailInput f:
                            throw f.Error;
                        default:
                            throw new InvariantViolationException($"Unknown loop input {input?.GetType().Name ?? "(empty item)"}.");
                    }
                }

                if (_proposalBatch.Count > 0)
                {
                    ProposeBatch(_proposalBatch);
                    _proposalBatch.Clear();
                }

                // Every input of this turn is now where the stop finds it by itself (proposals in the
                // table, by request id; changes and transfers in their queues). From here a proposal
                // of this turn may be applied, answered and its pooled object reused by another call,
                // which failing this turn's items by object would then fail: so they are dropped.
                lastTaken = null;

                ProposeNextConfChange();
                StartReadRound();
                if (lastCall is not null)
                {
                    await OnLastCallAsync(lastCall);
                    lastCall = null;
                }

                await DriveReadiesAsync();
                if (StartReadRound())
                {
                    // That Ready answered the running round: the callers waiting behind it get
                    // their round now, not at the loop's next input.
                    await DriveReadiesAsync();
                }

                if (_raw.OutstandingReadies > 0)
                {
                    // Appends, heartbeats and forwards produced during the write need no
                    // persistence: out now, not after the write (a leader replicates what was
                    // proposed during its own fsync; followers persist it in their next write).
                    Send(_raw.TakeMessagesBeforePersist());
                }

                PublishFrameBorrowing();
                ReturnLentFrames();
            }
        }
        catch (Exception e)
        {
            failure = e;
        }

        Stop(failure);

        // The sync pipeline ends its fsync in progress (if any) before it sees the close.
        await AwaitQuietly(_syncTask);

        var stopped = Stopped();

        // Callers whose request the loop never got to: taken with the close or behind the input that
        // failed (the rest of that turn's inputs), or posted just before the close and never taken.
        // Failing one the loop did handle is harmless: every completion is first-wins, and a proposal
        // taken in the failed turn cannot have been applied (so returned to the pool and reused)
        // before the turn reached the point where lastTaken is dropped.
        FailCallersOf(lastTaken ?? [], stopped);
        FailCallersOf(_inbox.TakeLeftAfterClose(), stopped);
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

    /// <summary>
    /// Whether something the loop owns waits for the applier to move on: a confirmed read round for
    /// its index, a configuration change for its entry, a snapshot request to be taken, or the loop
    /// itself, holding back Readies while <see cref="MaxQueuedApplies"/> applies are queued. Only
    /// then does the applier wake the loop when it has applied a batch; otherwise the loop learns the
    /// applied index at its next turn (<see cref="CatchUpWithApplier"/>), and an apply costs no
    /// loop wake-up.
    /// </summary>
    private bool LoopWaitsForApplier() =>
        _snapshotRequested
        || _reads.HasConfirmedRounds
        || Volatile.Read(ref _queuedApplies) >= MaxQueuedApplies
        || (_confChanges.TryPeek(out var change) && change.Index != 0);

    /// <summary>
    /// Before the loop waits for input: tells the applier whether to wake it (<see cref="LoopWaitsForApplier"/>).
    /// Dekker's pattern with <see cref="OnBatchApplied"/>: the loop publishes the flag, then reads the
    /// applied index and the queued applies; the applier publishes those, then takes the flag (both
    /// with full fences). So either the loop sees the progress it waits for and posts itself a turn,
    /// or the applier sees the flag and posts one: a wake-up is never lost.
    /// </summary>
    private void ArmAppliedWake()
    {
        if (!LoopWaitsForApplier())
        {
            Volatile.Write(ref _loopAwaitsApplier, 0);
            return;
        }

        var heldBack = Volatile.Read(ref _queuedApplies) >= MaxQueuedApplies;
        Interlocked.Exchange(ref _loopAwaitsApplier, 1);
        if (Volatile.Read(ref _appliedIndex) > _loopAppliedIndex || (heldBack && Volatile.Read(ref _queuedApplies) < MaxQueuedApplies))
        {
            _inbox.TryPost(new AppliedInput(Volatile.Read(ref _appliedIndex)));
        }
    }

    /// <summary>
    /// At the end of every loop turn: tells the transport whether to lend this node frames
    /// (<see cref="Receiver.CanBorrowFrames"/>): while the core is a follower, the one role that gives
    /// them back. Taken from the core, not from the last Ready's soft state, so a follower that was a
    /// pre-candidate for a moment (a late heartbeat) borrows again from the turn that stepped the
    /// leader's next append, not from its next Ready (held back up to an fsync by the group commit).
    /// </summary>
    private void PublishFrameBorrowing()
    {
        var isFollower = _raw.SoftState.Role == StateRole.Follower;
        if (_borrowsFrames != isFollower)
        {
            Volatile.Write(ref _borrowsFrames, isFollower);
        }
    }

    /// <summary>
    /// At the end of every loop turn: gives back the borrowed frames no holder reads any more
    /// (<see cref="ReceivedFrameLedger"/> states the rule and why it holds). A node that is not a
    /// follower forgets them instead: it may be, or become, a leader that sends what its log holds.
    /// Each turn checks, and reaching leadership takes more than one turn (its vote requests go out
    /// in one, the answers come in a later one), so no frame recorded as a follower is returned
    /// after this node led.
    /// </summary>
    private void ReturnLentFrames()
    {
        if (_lentFrames.Count == 0)
        {
            return;
        }

        if (_raw.SoftState.Role != StateRole.Follower)
        {
            _lentFrames.ForgetAll();
            return;
        }

        if (_returnFramesWhenStepped)
        {
            _lentFrames.ReturnUpTo(ulong.MaxValue);
            return;
        }

        // Entries up to the applied index are applied (the apply pipeline is done with them, and a
        // node applies only what it made durable, so neither the core nor the write pipeline holds
        // them); the durable log's cache holds entries from its first cached index on.
        var applied = Volatile.Read(ref _appliedIndex);
        var cacheFirst = _log.CacheFirstIndex;
        _lentFrames.ReturnUpTo(Math.Min(applied, cacheFirst - 1));
    }

    /// <summary>At every loop turn: what the applier applied since the last one (read states, configuration changes, own entries).</summary>
    private void CatchUpWithApplier()
    {
        var applied = Volatile.Read(ref _appliedIndex);
        if (applied > _loopAppliedIndex)
        {
            OnApplied(applied);
        }
    }

    // Starts a read-index round for the callers waiting, if none runs; true when one started.
    private bool StartReadRound()
    {
        if (_reads.TryStartRound(ref _nextRequestId, _tick) is not { } context)
        {
            return false;
        }

        _raw.ReadIndex(context);
        _metrics.ReadRoundStarted(_reads.LastRoundReaders);
        return true;
    }

    private static void FailCallersOf(List<LoopItem> inputs, NodeStoppedException stopped)
    {
        foreach (var item in inputs)
        {
            item.Proposal?.Fail(stopped);
            switch (item.Input)
            {
                case ConfChangeInput c:
                    c.Pending.Completion.TrySetException(stopped);
                    break;
                case TransferInput t:
                    t.Pending.Completion.TrySetException(stopped);
                    break;
            }
        }
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
                SendSnapshot(m);
                continue;
            }

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
        // Releases of callers whose continuations block get a second work item (see ProposalRelease).
        for (int n = _releasesRunning.Count; n > 0 && _releasesRunning.TryDequeue(out var release); n--)
        {
            if (release.HelpIfStalled())
            {
                _releasesRunning.Enqueue(release);
            }
        }

        // Copied into the loop's reused list (a thousand proposals in flight: no new list per tick).
        _proposals.CopyTo(_proposalScan);
        foreach (var (requestId, pending) in _proposalScan)
        {
            // A proposal answered since the copy may be reused already: its deadline may be the
            // later call's, but FailProposal acts by the id copied, which that call does not have.
            if (pending.DeadlineTick != 0 && _tick >= pending.DeadlineTick)
            {
                FailProposal(requestId, new ProposalDroppedException(ProposalDropReason.TimedOut));
            }
        }

        _proposalScan.Clear();

        if (_reads.RetryIfDue(ref _nextRequestId, _tick, _readRetryTicks) is { } context)
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

        RefreshStatus();
        if (_tick % _summaryEveryTicks == 0)
        {
            LogDropSummary();
        }
    }

    private void LogDropSummary()
    {
        // Sends fail on the loop and on the sync pipeline: counted with Interlocked.
        var failedSends = Interlocked.Exchange(ref _failedSends, 0);
        if (_rejectedMessages == 0 && failedSends == 0 && _unreachableReports.Count == 0)
        {
            return;
        }

        if (_logger.IsEnabled(LogLevel.Information))
        {
            var unreachable = string.Join(", ", _unreachableReports.Select(p => $"{p.Key}: {p.Value}"));
            RaftNodeLog.DropSummary(_logger, Id, _summaryEveryTicks, _rejectedMessages, failedSends, unreachable);
        }

        _rejectedMessages = 0;
        _unreachableReports.Clear();
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
                _proposals.SetDeadlineWhereNone(_tick + _proposalTimeoutTicks);

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

        RefreshStatus();
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

    private abstract record LoopInput;

    /// <summary>
    /// One item of the loop's inbox: a caller's proposal or a peer's message carried as it is (the
    /// two inputs that come with every replicated command: no wrapper object each), or any other input.
    /// Exactly one of the three is set.
    /// </summary>
    private readonly struct LoopItem
    {
        private LoopItem(LoopInput? input, PendingProposal<TResult>? proposal, Message? message)
        {
            Input = input;
            Proposal = proposal;
            Message = message;
        }

        public LoopInput? Input { get; }

        public PendingProposal<TResult>? Proposal { get; }

        public Message? Message { get; }

        public static LoopItem Propose(PendingProposal<TResult> pending) => new(null, pending, null);

        public static LoopItem Step(Message message) => new(null, null, message);

        public static implicit operator LoopItem(LoopInput input) => new(input, null, null);
    }

    /// <summary>A transport's batch of messages, and the frame copies they borrow (<see cref="IReceivedFrameBorrower"/>) or null.</summary>
    private sealed record StepBatchInput(Message[] Messages, LentFrame[]? Frames) : LoopInput;

    private sealed record AppliedInput(ulong Index) : LoopInput;

    private sealed record ReadsWaitingInput : LoopInput
    {
        public static readonly ReadsWaitingInput Instance = new();
    }

    private sealed record ConfChangeInput(PendingConfChange Pending) : LoopInput;

    private sealed record TransferInput(PendingTransfer Pending) : LoopInput;

    private sealed record SnapshotSentInput(ulong To, bool Succeeded) : LoopInput;

    private sealed record SnapshotSavedInput(SnapshotMetadata Metadata) : LoopInput;

    private sealed record UnreachableInput(ulong PeerId) : LoopInput;

    private sealed record FailInput(Exception Error) : LoopInput;

    /// <summary>The sync pipeline's last call before an fsync: the loop writes what it held back, then answers whether it wrote anything.</summary>
    private sealed record LastCallInput(TaskCompletionSource<bool> Answered) : LoopInput;

    /// <summary>
    /// A Ready written to the log: queued to the sync pipeline, which completes <see cref="Durable"/>
    /// once it is durable (or sets <see cref="Error"/>) and hands the same object back to the loop as
    /// its report (one allocation per write for both hops).
    /// </summary>
    private sealed record SyncItem(Ready Ready, TaskCompletionSource Durable) : LoopInput
    {
        /// <summary>Set by the sync pipeline before it reports the item: the failure that kept it from becoming durable.</summary>
        public Exception? Error { get; set; }
    }
}
