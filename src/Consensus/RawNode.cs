using EmbeddedRaft.Consensus.Core;
using EmbeddedRaft.Consensus.Membership;
using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus;

/// <summary>
/// A Raft node as a pure, deterministic state machine (the model of etcd-io/raft's RawNode):
/// no threads, timers or IO, and no randomness but its election-jitter seed. Drive it with
/// <see cref="Tick"/> (logical time), <see cref="Step"/> (messages from peers) and the proposal
/// methods; collect its output with <see cref="HasReady"/>/<see cref="GetReady"/>, handle the
/// <see cref="Ready"/>, then call <see cref="Advance"/>.
/// </summary>
/// <remarks>
/// <para>Not thread-safe: use one thread, or serialise every call. Given the same options (with
/// <see cref="RaftOptions.RandomSeed"/> set), storage contents and sequence of calls, a node always
/// produces the same outputs; with the seed unset the constructor draws one from the operating
/// system's random source, the node's only use of randomness from outside.</para>
/// <para><b>Between <see cref="GetReady"/> and <see cref="Advance"/></b> (while the host persists
/// and applies a Ready, as an async host does in the background) every method may be called
/// except <see cref="GetReady"/> (it throws) — <see cref="Tick"/>, <see cref="Step"/>,
/// <see cref="Propose"/>, <see cref="ProposeBatch"/>, <see cref="ProposeConfChange"/>,
/// <see cref="ReadIndex"/>, <see cref="TransferLeadership"/>, <see cref="Campaign"/>,
/// <see cref="ReportUnreachable"/>, <see cref="ReportSnapshot"/>, <see cref="GetStatus"/> — and
/// <see cref="ApplyConfChange"/> must be called for each configuration change of that Ready's
/// <see cref="Ready.CommittedEntries"/>, in order, before <see cref="Advance"/>. What they produce
/// goes into the next Ready. A snapshot stepped meanwhile is only installed if it lies above the
/// commit index (so above everything the outstanding Ready hands out), and the configuration
/// changes of the outstanding Ready still apply in order to the configuration as of the previous
/// applied entry: the host persists what <see cref="ApplyConfChange"/> returns with that entry's
/// index, then the snapshot (in the next Ready) with its own configuration.</para>
/// </remarks>
public sealed class RawNode
{
    private readonly RaftCore _core;

    // Readies handed out and not yet advanced, oldest first (at most MaxOutstandingReadies).
    private readonly Queue<PendingReady> _outstanding = new();
    private SoftState _previousSoftState;
    private HardState _previousHardState;
    private int _maxOutstandingReadies = 1;

    // The list TakeMessagesBeforePersist handed out last: cleared and given back to the core on the next call.
    private List<Message> _recycledMessages = [];

    /// <summary>
    /// Creates a node over <paramref name="storage"/>, resuming from its hard state, configuration
    /// and log (a fresh storage with voters in its configuration bootstraps a new cluster).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range (the parameter name says which).</exception>
    /// <exception cref="ArgumentException">Options contradict each other, or the storage's state is inconsistent.</exception>
    public RawNode(RaftOptions options, IRaftStorage storage)
    {
        _core = new RaftCore(options, storage);
        _previousSoftState = _core.SoftState;
        _previousHardState = _core.HardState;
    }

    /// <summary>This node's id.</summary>
    public ulong Id => _core.Id;

    /// <summary>Current leader and role.</summary>
    public SoftState SoftState => _core.SoftState;

    /// <summary>Current term, vote and commit index.</summary>
    public HardState HardState => _core.HardState;

    internal RaftCore Core => _core;

    /// <summary>Advances logical time by one tick: drives election timeouts and leader heartbeats.</summary>
    public void Tick() => _core.Tick();

    /// <summary>
    /// Starts an election now (a pre-election first if <see cref="RaftOptions.PreVote"/> is set).
    /// No effect on a leader, a non-voter, a node with a committed configuration change not yet
    /// applied, or, with <see cref="ReadOnlyMode.LeaseBased"/>, a node that heard from a leader
    /// less than an election timeout ago (voting for itself would break the promise that leader's
    /// lease rests on; use <see cref="TransferLeadership"/> instead).
    /// </summary>
    public void Campaign() => _core.Step(new Message { Type = MessageType.Hup, From = Id });

    /// <summary>
    /// Proposes a command to be appended to the log. On a follower it is forwarded to the leader
    /// (unless forwarding is disabled); acceptance is not commitment — watch
    /// <see cref="Ready.CommittedEntries"/>. <paramref name="data"/> must not be mutated afterwards.
    /// </summary>
    /// <exception cref="ProposalDroppedException">The proposal was refused; nothing was appended.</exception>
    public void Propose(ReadOnlyMemory<byte> data) =>
        _core.Step(new Message { Type = MessageType.Propose, From = Id, Entries = new[] { new Entry(data) } });

    /// <summary>
    /// Proposes several commands at once: one message and one append for all of them, which is
    /// how high throughput is reached. All are accepted or, with an exception, none.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="commands"/> is empty.</exception>
    /// <exception cref="ProposalDroppedException">The batch was refused; nothing was appended.</exception>
    public void ProposeBatch(ReadOnlySpan<ReadOnlyMemory<byte>> commands)
    {
        if (commands.IsEmpty)
        {
            throw new ArgumentException("At least one command is required.", nameof(commands));
        }

        var entries = new Entry[commands.Length];
        for (var i = 0; i < entries.Length; i++)
        {
            entries[i] = new Entry(commands[i]);
        }

        _core.Step(new Message { Type = MessageType.Propose, From = Id, Entries = entries });
    }

    /// <summary>
    /// Proposes a configuration change (Raft thesis ch. 4). On the leader it is validated against
    /// the current configuration and appended, or refused; on a follower it is forwarded and the
    /// leader validates it (a refusal there is lost like any dropped forwarded proposal, so
    /// propose on the leader to learn why). The change takes effect on each node when the host
    /// applies the committed entry with <see cref="ApplyConfChange"/>. Only one change may be
    /// pending at a time. A refusal by the leader of a forwarded change comes back to this node
    /// as a <see cref="RefusedProposal"/> in <see cref="Ready.RefusedProposals"/>.
    /// </summary>
    /// <exception cref="ConfChangeRejectedException">
    /// The change is invalid (removes every voter, changes several voters in one step, enters a
    /// joint configuration while joint, leaves a non-joint one, reuses a removed id, ...) or
    /// another change is not applied yet. Nothing was appended.
    /// </exception>
    /// <exception cref="ProposalDroppedException">No leader, forwarding disabled, or a leadership transfer is running.</exception>
    public void ProposeConfChange(ConfChange change)
    {
        ArgumentNullException.ThrowIfNull(change);
        var data = MessageCodec.EncodeConfChange(change);
        _core.Step(new Message
        {
            Type = MessageType.Propose,
            From = Id,
            Entries = new[] { new Entry(0, 0, EntryType.ConfChange, data) },
        });
    }

    /// <summary>
    /// Applies a committed configuration change: call it for each <see cref="EntryType.ConfChange"/>
    /// entry of <see cref="Ready.CommittedEntries"/>, in order, when applying it and before
    /// <see cref="Advance"/> (decode the data with <see cref="MessageCodec.DecodeConfChange"/>).
    /// Returns the configuration as of that entry, which the host must persist atomically with
    /// that applied index: it is what <see cref="IRaftStorage.InitialState"/> returns after a
    /// restart (the contract is stated there) and what a snapshot taken at or after that index
    /// carries until the next change. A leader no longer among the voters
    /// stops accepting proposals and steps down, here or as soon as a remaining voter holds its
    /// whole log, telling that voter to campaign (see <see cref="RaftOptions.StepDownOnRemoval"/>);
    /// a leader of a joint configuration with auto-leave proposes the leave once this entry is
    /// advanced past.
    /// </summary>
    /// <exception cref="InvariantViolationException">
    /// The change is not the next configuration change handed out in a Ready (applied out of
    /// order, twice, or one never handed out), or it cannot apply to the configuration as of the
    /// previous applied entry (the persisted configuration does not match the applied index).
    /// </exception>
    public ConfState ApplyConfChange(ConfChange change)
    {
        ArgumentNullException.ThrowIfNull(change);
        return _core.ApplyConfChange(change);
    }

    /// <summary>
    /// Hands a message from a peer to the node. Messages for another term, or that are no longer
    /// relevant, are ignored as the protocol requires.
    /// </summary>
    /// <exception cref="MessageRejectedException">
    /// The message has a local-only type, is a response from a node outside the configuration,
    /// or is malformed. No state was changed.
    /// </exception>
    /// <remarks>
    /// A forwarded proposal this node cannot accept (as leader: a transfer is running, the quota
    /// is full, the change is invalid; as follower: no leader, forwarding disabled) is not an
    /// error here: it is answered with a refusal that surfaces in the proposer's
    /// <see cref="Ready.RefusedProposals"/>. A <see cref="MessageType.ReadIndexResponse"/> or a
    /// refusal is accepted from a leader this node's configuration does not know yet.
    /// </remarks>
    public void Step(Message message) => _core.StepFromNetwork(message);

    /// <summary>
    /// Requests a linearizable read point (Raft thesis §6.4). When confirmed, a
    /// <see cref="ReadState"/> with <paramref name="requestContext"/> appears in
    /// <see cref="Ready.ReadStates"/>; serve the read once the application has applied its index.
    /// Requests made while no leader is known are silently dropped (retry after a timeout).
    /// </summary>
    public void ReadIndex(ReadOnlyMemory<byte> requestContext) =>
        _core.Step(new Message { Type = MessageType.ReadIndex, Entries = new[] { new Entry(requestContext) } });

    /// <summary>
    /// Asks the leader to hand leadership to <paramref name="transferee"/> (thesis §3.10): the
    /// leader catches it up, then tells it to campaign at once. Proposals are dropped while the
    /// transfer runs; it is abandoned after an election timeout.
    /// </summary>
    public void TransferLeadership(ulong transferee) =>
        _core.Step(new Message { Type = MessageType.TransferLeader, From = transferee });

    /// <summary>Reports that a message to <paramref name="id"/> could not be delivered; the leader then probes it instead of streaming.</summary>
    public void ReportUnreachable(ulong id) =>
        _core.Step(new Message { Type = MessageType.Unreachable, From = id });

    /// <summary>Reports whether the snapshot sent to <paramref name="id"/> was delivered; replication to it resumes either way.</summary>
    public void ReportSnapshot(ulong id, bool succeeded) =>
        _core.Step(new Message { Type = MessageType.SnapshotStatus, From = id, Reject = !succeeded });

    /// <summary>
    /// Whether <see cref="GetReady"/> has anything to hand out. False while a Ready is
    /// outstanding (until <see cref="Advance"/>), since <see cref="GetReady"/> would throw.
    /// </summary>
    public bool HasReady()
    {
        if (!CanHandOutReady())
        {
            return false;
        }

        var log = _core.Log;
        var hard = _core.HardState;
        return _core.SoftState != _previousSoftState
            || (!hard.IsEmpty && hard != _previousHardState)
            || log.HasPendingSnapshot
            || HasEntriesToWrite
            || _core.Messages.Count > 0
            || _core.MessagesAfterAppend.Count > 0
            || _core.ReadStates.Count > 0
            || _core.RefusedProposals.Count > 0
            || _core.PeersNeedingSnapshot.Count > 0
            || log.HasNextCommittedEntries;
    }

    /// <summary>
    /// Collects everything that changed since the last Ready. Handle it as <see cref="Ready"/>
    /// describes, then call <see cref="Advance"/> before asking for the next one.
    /// </summary>
    /// <exception cref="InvalidOperationException">The previous Ready has not been advanced.</exception>
    public Ready GetReady()
    {
        if (!CanHandOutReady())
        {
            throw new InvalidOperationException(_maxOutstandingReadies == 1 || _outstanding.Count >= _maxOutstandingReadies
                ? "The previous Ready has not been advanced; call Advance first."
                : "A snapshot is pending or being persisted: no Ready is handed out beside it; call Advance first.");
        }

        var log = _core.Log;
        var soft = _core.SoftState;
        var hard = _core.HardState;

        // With nothing outstanding every unstable entry goes out (some may have been written by a
        // Ready whose stable mark a truncation voided: writing them again is harmless); otherwise
        // only those no outstanding Ready carries.
        var entries = _outstanding.Count == 0 ? log.Unstable.Entries : log.Unstable.EntriesNotInProgress;
        log.Unstable.AcceptInProgress();
        var snapshot = log.Unstable.Snapshot;
        var committed = log.NextCommittedEntries();
        if (!committed.IsEmpty)
        {
            log.AcceptApplying(committed.Span[^1].Index);
        }

        _core.OnCommittedEntriesHandedOut(committed.Span);

        var messages = _core.Messages.Count == 0 ? [] : _core.Messages.ToArray();
        _core.Messages.Clear();
        var afterPersist = new List<Message>(_core.MessagesAfterAppend.Count);
        List<Message>? stepsOnAdvance = null;
        foreach (var m in _core.MessagesAfterAppend)
        {
            if (m.To == Id)
            {
                // Our own acknowledgements and votes: they take effect once persisted, on this
                // Ready's Advance.
                (stepsOnAdvance ??= []).Add(m);
            }
            else
            {
                afterPersist.Add(m);
            }
        }

        _core.MessagesAfterAppend.Clear();
        var readStates = _core.ReadStates.Count == 0 ? [] : _core.ReadStates.ToArray();
        _core.ReadStates.Clear();
        var refused = _core.RefusedProposals.Count == 0 ? [] : _core.RefusedProposals.ToArray();
        _core.RefusedProposals.Clear();
        var needSnapshot = _core.PeersNeedingSnapshot.Count == 0 ? [] : _core.PeersNeedingSnapshot.ToArray();
        _core.PeersNeedingSnapshot.Clear();

        var hardChanged = !hard.IsEmpty && hard != _previousHardState;
        var ready = new Ready
        {
            SoftState = soft != _previousSoftState ? soft : null,
            HardState = hardChanged ? hard : null,
            Entries = entries,
            Snapshot = snapshot,
            CommittedEntries = committed,
            Messages = messages,
            MessagesAfterPersist = afterPersist,
            ReadStates = readStates,
            RefusedProposals = refused,
            PeersNeedingSnapshot = needSnapshot,
            // A snapshot's acknowledgement (in MessagesAfterPersist) promises it is durable.
            MustSync = !entries.IsEmpty || snapshot is not null || hard.Term != _previousHardState.Term || hard.Vote != _previousHardState.Vote,
        };

        _previousSoftState = soft;
        if (hardChanged)
        {
            _previousHardState = hard;
        }

        var last = entries.IsEmpty ? default : entries.Span[^1];
        _outstanding.Enqueue(new PendingReady(
            entries.IsEmpty ? 0 : last.Index,
            last.Term,
            snapshot,
            committed,
            stepsOnAdvance));
        return ready;
    }

    /// <summary>
    /// How many Readies may be outstanding at once (etcd-io/raft's asynchronous storage writes):
    /// 1, the default, is the contract of <see cref="GetReady"/>; above 1 a host may take the next
    /// Ready while earlier ones are still being persisted and applied, provided it persists them in
    /// the order it got them (a later one may overwrite an earlier one's entries), sends each one's
    /// <see cref="Ready.MessagesAfterPersist"/> only once it and every earlier one are durable,
    /// applies committed entries in order only once this node holds them durably, and calls
    /// <see cref="Advance"/> once per Ready, oldest first. A Ready carrying a snapshot is never
    /// outstanding beside another one: while one is outstanding, or a snapshot is pending, no
    /// further Ready is handed out.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Below 1.</exception>
    internal int MaxOutstandingReadies
    {
        get => _maxOutstandingReadies;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1, nameof(MaxOutstandingReadies));
            _maxOutstandingReadies = value;
        }
    }

    /// <summary>How many Readies are handed out and not yet advanced.</summary>
    internal int OutstandingReadies => _outstanding.Count;

    /// <summary>
    /// Whether committed entries at or below <paramref name="durableIndex"/> wait to be handed out
    /// (a host that holds back Readies still takes one for them: they can apply at once).
    /// </summary>
    internal bool HasCommittedEntriesUpTo(ulong durableIndex)
    {
        var log = _core.Log;
        return log.HasNextCommittedEntries && Math.Max(log.Applying, log.FirstIndex() - 1) < durableIndex;
    }

    /// <summary>Whether read states wait to be handed out (a host that holds back Readies still takes one for them).</summary>
    internal bool HasReadStates => _core.ReadStates.Count > 0;

    /// <summary>
    /// Whether the next Ready carries what a host should not hold back behind a running write: a
    /// role or leader change, a new term or vote (a vote response waits on its write), or a refused
    /// proposal's error (its caller waits on it).
    /// </summary>
    internal bool HasUrgentReady
    {
        get
        {
            var hard = _core.HardState;
            return _core.SoftState != _previousSoftState
                || _core.RefusedProposals.Count > 0
                || (!hard.IsEmpty && (hard.Term != _previousHardState.Term || hard.Vote != _previousHardState.Vote));
        }
    }

    /// <summary>Whether entries wait to be handed out that no outstanding Ready carries (what a host's next write would need an fsync for).</summary>
    internal bool HasEntriesToWrite => _outstanding.Count == 0 ? _core.Log.Unstable.Count > 0 : _core.Log.Unstable.HasEntriesNotInProgress;

    private bool CanHandOutReady()
    {
        if (_outstanding.Count == 0)
        {
            return true;
        }

        if (_outstanding.Count >= _maxOutstandingReadies || _core.Log.HasPendingSnapshot)
        {
            return false;
        }

        foreach (var pending in _outstanding)
        {
            if (pending.Snapshot is not null)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// While a Ready is outstanding: takes the messages produced since it was handed out that need
    /// no persistence (those <see cref="Ready.Messages"/> would carry: appends and heartbeats,
    /// forwarded proposals, vote requests — never acknowledgements or votes, which wait in
    /// <see cref="Ready.MessagesAfterPersist"/>), so that the host sends them at once instead of
    /// after the outstanding Ready's write. A leader thus replicates proposals made during its own
    /// fsync without waiting for it (etcd's asynchronous storage writes do the same).
    /// </summary>
    /// <remarks>
    /// Safe because no such message depends on anything being durable: <see cref="Ready.Messages"/>
    /// are already sent before their own Ready's write, and the node's own acknowledgements take
    /// effect only on <see cref="Advance"/>. Returns an empty list when there are none.
    /// <para>Ownership: the list returned is the node's and is valid until the next call, which
    /// clears it and reuses it (two lists take turns, so a host that sends at once allocates none).
    /// Copy it to keep it longer.</para>
    /// </remarks>
    internal IReadOnlyList<Message> TakeMessagesBeforePersist()
    {
        if (_core.Messages.Count == 0)
        {
            return [];
        }

        _recycledMessages.Clear();
        var taken = _core.ExchangeMessages(_recycledMessages);
        _recycledMessages = taken;
        return taken;
    }

    /// <summary>
    /// Tells the node the last Ready was handled: its entries and snapshot are durable and its
    /// committed entries applied. The node's own acknowledgements and votes take effect now.
    /// </summary>
    /// <exception cref="InvalidOperationException">No Ready is outstanding.</exception>
    /// <exception cref="InvariantViolationException">A configuration change of the Ready was not applied with <see cref="ApplyConfChange"/>.</exception>
    public void Advance()
    {
        if (!_outstanding.TryPeek(out var pending))
        {
            throw new InvalidOperationException("Advance called without an outstanding Ready.");
        }

        _core.CheckConfChangesApplied(pending.Committed.IsEmpty ? 0 : pending.Committed.Span[^1].Index);
        _outstanding.Dequeue();
        var log = _core.Log;
        if (pending.Snapshot is { } snapshotMetadata)
        {
            log.StableSnapshotTo(snapshotMetadata.Index);
            _core.OnSnapshotApplied(snapshotMetadata);
        }

        if (pending.LastEntryIndex != 0)
        {
            log.StableTo(pending.LastEntryIndex, pending.LastEntryTerm);
        }

        if (!pending.Committed.IsEmpty)
        {
            log.AppliedTo(pending.Committed.Span[^1].Index);
            _core.ReduceUncommittedBytes(pending.Committed.Span);
            _core.OnApplied();
        }

        // The Ready is dequeued before stepping, so even if a step throws (e.g. a storage failure)
        // its messages are never stepped again on a later Advance.
        if (pending.StepsOnAdvance is { } steps)
        {
            foreach (var m in steps)
            {
                _core.Step(m);
            }
        }
    }

    /// <summary>A snapshot of the node's state, including replication progress when it leads.</summary>
    public RaftStatus GetStatus() => _core.GetStatus();

    private sealed record PendingReady(ulong LastEntryIndex, ulong LastEntryTerm, SnapshotMetadata? Snapshot, ReadOnlyMemory<Entry> Committed, List<Message>? StepsOnAdvance);
}
