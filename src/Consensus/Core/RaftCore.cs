using System.Security.Cryptography;
using EmbeddedRaft.Consensus.Membership;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Quorum;
using EmbeddedRaft.Consensus.Tracking;

namespace EmbeddedRaft.Consensus.Core;

/// <summary>
/// The Raft state machine (etcd's raft.raft): no threads, clocks, IO or global randomness.
/// Inputs are <see cref="Tick"/> and <see cref="Step"/>; outputs accumulate in
/// <see cref="Messages"/>, <see cref="MessagesAfterAppend"/>, <see cref="ReadStates"/> and the
/// log, and are drained by <see cref="RawNode"/>. Role-specific behaviour is dispatched through
/// the <c>_step</c> and <c>_tick</c> delegates, swapped by the <c>BecomeX</c> methods.
/// </summary>
/// <remarks>
/// References are to the Raft paper (Ongaro and Ousterhout, 2014) and Ongaro's thesis (2014).
/// Invariants: <c>Vote</c> is set at most once per term; <c>Lead == Id</c> iff <c>Role == Leader</c>;
/// a leader never removes or overwrites entries in its own log (§5.3, Leader Append-Only).
/// </remarks>
internal sealed class RaftCore
{
    /// <summary>Vote request context marking a campaign started by a leadership transfer.</summary>
    private static readonly byte[] s_campaignTransfer = "CampaignTransfer"u8.ToArray();

    /// <summary>
    /// The largest term or index a message may carry (2^63 - 1); larger values are malformed.
    /// No honest cluster gets near it, and it leaves room for every local increment (the term
    /// of a campaign, the index of a new entry) to be computed without overflow.
    /// </summary>
    internal const ulong MaxTermOrIndex = long.MaxValue;

    private readonly int _electionTimeout;
    private readonly int _heartbeatTimeout;
    private readonly bool _checkQuorum;
    private readonly bool _preVote;
    private readonly bool _grantVoteWithoutLogCheck; // TestOnlyBrokenRules: simulator tests only
    private readonly bool _disableProposalForwarding;
    private readonly bool _stepDownOnRemoval;
    private readonly ReadOnlyMode _readOnlyMode;
    private readonly int _leaseDriftMarginTicks;
    private readonly ulong _maxMessageBytes;
    private readonly ulong _maxUncommittedBytes;
    private readonly Prng _random;
    private readonly ReadOnlyQueue _readOnly = new();
    private readonly List<Message> _pendingReadIndexMessages = [];

    /// <summary>
    /// Configuration changes handed to the host in <see cref="Ready.CommittedEntries"/> and not yet
    /// applied with <see cref="ApplyConfChange"/>, oldest first: their index and encoded change.
    /// </summary>
    private readonly Queue<(ulong Index, ReadOnlyMemory<byte> Data)> _confChangesHandedOut = new();

    // Reused to stamp term and index onto proposals before they are copied into the log.
    private Entry[] _scratch = new Entry[64];
    private Action<Message> _step;
    private Action _tick;
    private int _electionElapsed;
    private int _heartbeatElapsed;
    private int _transferElapsed;
    private int _randomizedElectionTimeout;
    private ulong _uncommittedBytes;
    private ulong _nextReadRoundId = 1;

    /// <summary>This node's clock: ticks since it started. Lease arithmetic is done in these units.</summary>
    private ulong _ticks;

    /// <summary>
    /// Follower side of the lease: ticks since this node last heard from a leader (an append,
    /// heartbeat or snapshot of its current term). While it is below the election timeout the
    /// node grants no vote or pre-vote, whatever its role or term (see <see cref="InLeasePromise"/>).
    /// Unlike etcd's inLease (<c>Lead != 0 &amp;&amp; electionElapsed &lt; electionTimeout</c>) it is not
    /// cleared when a message of a higher term makes the node forget its leader, nor by a restart.
    /// </summary>
    private int _ticksSinceLeaderContact;

    /// <summary>
    /// Leader side of the lease: for each voter that acknowledged a heartbeat of this term, the
    /// leader's tick when the newest acknowledged heartbeat was sent, plus one (0: none yet).
    /// </summary>
    private readonly Dictionary<ulong, ulong> _leaseAckSentTickPlusOne = [];

    /// <summary>
    /// Set when this leader sent TimeoutNow in its term: the target campaigns bypassing every
    /// follower's promise (thesis §3.10), possibly much later if the message is delayed, so no
    /// lease can be trusted again in this term.
    /// </summary>
    private bool _leaseForfeited;

    public RaftCore(RaftOptions options, IRaftStorage storage)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(storage);
        options.Validate();

        Id = options.Id;
        _electionTimeout = options.ElectionTimeoutTicks;
        _heartbeatTimeout = options.HeartbeatTimeoutTicks;
        _checkQuorum = options.CheckQuorum;
        _preVote = options.PreVote;
        _grantVoteWithoutLogCheck = options.BrokenRules.GrantVoteWithoutLogCheck;
        _disableProposalForwarding = options.DisableProposalForwarding;
        _stepDownOnRemoval = options.StepDownOnRemoval;
        _readOnlyMode = options.ReadOnlyMode;
        _leaseDriftMarginTicks = options.EffectiveLeaseDriftMarginTicks;
        _maxMessageBytes = options.MaxSizePerMessageBytes;
        _maxUncommittedBytes = options.MaxUncommittedEntriesBytes == 0 ? ulong.MaxValue : options.MaxUncommittedEntriesBytes;
        // Unseeded, the jitter comes from the OS's random source: a seed derived from the id (as
        // before) would give two clusters' node 1 the same sequence and, worse, nodes restarted
        // together the same relative timings on every run. Replays set RandomSeed explicitly.
        _random = new Prng(options.RandomSeed ?? BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(sizeof(ulong))));

        Log = new RaftLog(storage, options.MaxCommittedBytesPerReady == 0 ? ulong.MaxValue : options.MaxCommittedBytesPerReady);
        var (hardState, confState) = storage.InitialState();
        Tracker = new ProgressTracker(options.MaxInflightMessages, options.MaxInflightBytes);
        Tracker.Reset(confState, Log.LastIndex() + 1);

        // The commit index is max(hard state commit, snapshot index, applied index): commit-only
        // hard-state changes need not be synced, so the durable commit may lag what was applied
        // or compacted, and both are necessarily committed. CommitTo never lowers it below the
        // snapshot index the log starts from.
        if (!hardState.IsEmpty)
        {
            if (hardState.Commit > Log.LastIndex())
            {
                throw new ArgumentException(
                    $"Storage hard state commit {hardState.Commit} is beyond the last index {Log.LastIndex()}.", nameof(storage));
            }

            Log.CommitTo(hardState.Commit);
            Term = hardState.Term;
            Vote = hardState.Vote;
        }

        if (options.AppliedIndex is null && !confState.Equals(SnapshotConfState(storage)))
        {
            // Without an applied index the application is assumed to hold the snapshot's state,
            // and the entries after it are handed out again: applying their configuration changes
            // on top of a configuration that already includes them would fail, or silently
            // diverge (a promotion re-applied as the demotion it followed).
            throw new ArgumentException(
                $"The storage's configuration {confState} is not its snapshot's {SnapshotConfState(storage)}: it was saved with a later applied index, "
                + $"which must be passed as {nameof(RaftOptions.AppliedIndex)} (options with {{ AppliedIndex = applied }}).",
                nameof(options));
        }

        if (options.AppliedIndex is { } applied)
        {
            if (applied > Log.LastIndex() || applied < Log.Applied)
            {
                throw new ArgumentOutOfRangeException(
                    nameof(options),
                    applied,
                    $"{nameof(RaftOptions.AppliedIndex)} must lie between the snapshot index {Log.Applied} and the last index {Log.LastIndex()}.");
            }

            Log.CommitTo(applied);
            Log.AppliedTo(applied);
        }

        // A restarted member of a lease-reading cluster may have promised a leader not to vote
        // just before it stopped; it keeps that promise for an election timeout after starting
        // (a fresh node, term 0, has promised nothing).
        _ticksSinceLeaderContact = _readOnlyMode == ReadOnlyMode.LeaseBased && Term > 0 ? 0 : int.MaxValue;

        // The storage's configuration is the one persisted with the applied index.
        AppliedConfig = confState;
        _trackerConfigIndex = Log.Applied;

        _step = StepFollower;
        _tick = TickElection;
        BecomeFollower(Term, 0);
    }

    private static ConfState? SnapshotConfState(IRaftStorage storage)
    {
        try
        {
            return storage.Snapshot().ConfState;
        }
        catch (SnapshotTemporarilyUnavailableException)
        {
            return null;
        }
    }

    /// <summary>
    /// The configuration as of the last index the host applied (entry or snapshot): what
    /// <see cref="ApplyConfChange"/> applies the next change to, and returns for the host to
    /// persist with that index. Invariant: equal to the tracker's configuration unless a snapshot
    /// restored since the last apply put the tracker ahead (<see cref="_trackerConfigIndex"/>
    /// above the applied index); it catches up when the snapshot is applied.
    /// </summary>
    public ConfState AppliedConfig { get; private set; }

    /// <summary>The log index the tracker's configuration reflects: the last change applied, or a restored snapshot's index.</summary>
    private ulong _trackerConfigIndex;

    public ulong Id { get; }

    public ulong Term { get; private set; }

    /// <summary>The candidate this node voted for in <see cref="Term"/>, or 0.</summary>
    public ulong Vote { get; private set; }

    public ulong Lead { get; private set; }

    public StateRole Role { get; private set; }

    public RaftLog Log { get; }

    public ProgressTracker Tracker { get; private set; }

    /// <summary>
    /// On a leader: the index of the last configuration change it may have appended (its last
    /// index when elected, since earlier terms may have left changes in the log). A new change
    /// is accepted only once this index is applied, so at most one change is ever pending and
    /// the tracker's configuration is the one every pending proposal is validated against.
    /// </summary>
    public ulong PendingConfIndex { get; private set; }

    /// <summary>Non-zero while a leadership transfer to that node is in progress.</summary>
    public ulong LeadTransferee { get; private set; }

    /// <summary>Messages that may be sent before the unstable state is durable.</summary>
    public List<Message> Messages { get; private set; } = [];

    /// <summary>Takes <see cref="Messages"/> as they are and continues with <paramref name="empty"/> (a list the caller recycles).</summary>
    public List<Message> ExchangeMessages(List<Message> empty)
    {
        if (empty.Count != 0)
        {
            throw new InvariantViolationException($"Node {Id}: a recycled message list must be empty (it holds {empty.Count}).");
        }

        var taken = Messages;
        Messages = empty;
        return taken;
    }

    /// <summary>
    /// Messages that promise durability (append acks, votes): delivered only after the unstable
    /// state is persisted. Those addressed to this node are its own acks and votes, stepped on
    /// <see cref="RawNode.Advance"/>.
    /// </summary>
    public List<Message> MessagesAfterAppend { get; } = [];

    public List<ReadState> ReadStates { get; } = [];

    /// <summary>Proposals this node forwarded that the leader refused (drained into <see cref="Ready.RefusedProposals"/>).</summary>
    public List<RefusedProposal> RefusedProposals { get; } = [];

    /// <summary>
    /// On a leader: peers it can only catch up with a snapshot while storage has none (a node that
    /// joined empty). Drained into <see cref="Ready.PeersNeedingSnapshot"/>.
    /// </summary>
    public List<ulong> PeersNeedingSnapshot { get; } = [];

    public int RandomizedElectionTimeout => _randomizedElectionTimeout;

    public int ElectionElapsed => _electionElapsed;

    public HardState HardState => new(Term, Vote, Log.Committed);

    public SoftState SoftState => new(Lead, Role);

    /// <summary>Only voters with no snapshot pending may campaign.</summary>
    public bool Promotable =>
        Tracker.Progress.TryGetValue(Id, out var pr) && !pr.IsLearner && !Log.HasPendingSnapshot;

    // ---------------------------------------------------------------- inputs

    public void Tick()
    {
        _ticks++;
        if (_ticksSinceLeaderContact < int.MaxValue)
        {
            _ticksSinceLeaderContact++;
        }

        _tick();
    }

    /// <summary>
    /// Whether this node is within its promise to a leader it heard from less than an election
    /// timeout ago (thesis §4.2.3 and §6.4.1). With CheckQuorum a node in this window grants no
    /// vote or pre-vote (except to a transfer's campaign), which is what lets the leader's lease
    /// (<see cref="LeaseHolds"/>) stand.
    /// </summary>
    /// <remarks>
    /// The first half is etcd's inLease. The second, in lease mode only (every member of a cluster
    /// that reads by lease must use it), also covers a node that forgot its leader through a
    /// message of a higher term, or a restart, while its promise still runs.
    /// </remarks>
    private bool InLeasePromise =>
        _checkQuorum && ((Lead != 0 && _electionElapsed < _electionTimeout) || PromiseClockRunning);

    /// <summary>Lease mode: this node heard from a leader (or restarted) less than an election timeout ago on its own clock.</summary>
    private bool PromiseClockRunning =>
        _checkQuorum && _readOnlyMode == ReadOnlyMode.LeaseBased && _ticksSinceLeaderContact < _electionTimeout;

    /// <summary>
    /// Validates a message that came from the network and steps it. Nothing a peer can send gets
    /// past here to break an invariant: it is either handled or refused before any state changes.
    /// </summary>
    public void StepFromNetwork(Message m)
    {
        ArgumentNullException.ThrowIfNull(m);
        if (MessageTypes.IsLocal(m.Type))
        {
            throw new MessageRejectedException(MessageRejectReason.LocalMessageType, $"{m.Type} is a local message type.");
        }

        // A ReadIndexResponse is the exception: only the leader of a term sends one, so its term,
        // checked in Step like any other, identifies the sender. A node follows (and forwards reads
        // to) a leader its configuration may not know yet — a new node before its first snapshot,
        // or one whose configuration lags the leader's log — and must still get the answer the
        // leader worked for (issue 10; the alternative, not forwarding until the configuration
        // knows the leader, would leave a joining node unable to read until it catches up).
        if (MessageTypes.IsResponse(m.Type) && m.Type != MessageType.ReadIndexResponse && !Tracker.Progress.ContainsKey(m.From))
        {
            if (Tracker.Config.Removed.Contains(m.From))
            {
                // A late answer from a node this configuration removed: expected, not hostile.
                return;
            }

            throw new MessageRejectedException(MessageRejectReason.UnknownPeer, $"{m.Type} from unknown peer {m.From}.");
        }

        // TransferLeader is the exception: its From names the transferee, which may be us; and a
        // ReadIndex keeps its requester as From when re-forwarded, which may be us (now leading).
        if (m.From == Id && m.Type is not (MessageType.TransferLeader or MessageType.ReadIndex))
        {
            throw Malformed(m, "claims to come from this node");
        }

        // Some messages only make sense for their recipient (a heartbeat's commit index is
        // min(match, commit) of that follower): one delivered to the wrong node must not act.
        if (m.To != Id)
        {
            throw Malformed(m, $"addressed to {m.To}, not to this node");
        }

        ValidateStructure(m);
        if (m.Type != MessageType.Propose)
        {
            Step(m);
            return;
        }

        // A forwarded proposal is ordinary traffic: a refusal is not the receiving host's error
        // but the proposer's outcome, so it goes back to the proposer (issue 10). Nothing was
        // appended when these are thrown: every check precedes the append.
        try
        {
            Step(m);
        }
        catch (ProposalDroppedException ex)
        {
            SendRefusal(m, EncodeRefusal(RefusalKindDropped, (byte)ex.Reason), ex.Message);
        }
        catch (ConfChangeRejectedException ex)
        {
            SendRefusal(m, EncodeRefusal(RefusalKindConfChange, (byte)ex.Reason), ex.Message);
        }
    }

    private const ulong RefusalKindDropped = 1;
    private const ulong RefusalKindConfChange = 2;

    /// <summary>A refusal travels in <see cref="Message.RejectHint"/> as <c>kind * 256 + reason</c>.</summary>
    private static ulong EncodeRefusal(ulong kind, byte reason) => (kind << 8) | reason;

    /// <summary>The exception a refusal stands for; null if the code is unknown. The leader's message text travels in the context.</summary>
    private static Exception? DecodeRefusal(ulong code, ulong leaderId, ReadOnlySpan<byte> text)
    {
        var reason = (byte)(code & 0xFF);
        return (code >> 8) switch
        {
            RefusalKindDropped when Enum.IsDefined((ProposalDropReason)reason) =>
                new ProposalDroppedException((ProposalDropReason)reason),
            RefusalKindConfChange when Enum.IsDefined((ConfChangeRejectReason)reason) =>
                new ConfChangeRejectedException(
                    (ConfChangeRejectReason)reason,
                    $"Leader {leaderId}: {System.Text.Encoding.UTF8.GetString(text)}"),
            _ => null,
        };
    }

    private void SendRefusal(Message proposal, ulong code, string text) =>
        Send(new Message
        {
            Context = System.Text.Encoding.UTF8.GetBytes(text),
            Type = MessageType.ProposalRefused,
            To = proposal.From,
            From = Id,
            Term = Term,
            Reject = true,
            RejectHint = code,
            Entries = proposal.Entries,
        });

    private static void ValidateStructure(Message m)
    {
        if (m.Type > MessageTypes.MaxValue)
        {
            throw Malformed(m, "unknown type");
        }

        if (m.From == 0)
        {
            throw Malformed(m, "no sender");
        }

        // Only proposals and read-index requests travel without a term (they are forwarded as if local).
        if (m.Term == 0 && m.Type is not (MessageType.Propose or MessageType.ReadIndex))
        {
            throw Malformed(m, "term 0");
        }

        if (!WithinLimits(m))
        {
            throw Malformed(m, $"a term or index above {MaxTermOrIndex}");
        }

        var entries = m.Entries.Span;
        var confChanges = 0;
        foreach (ref readonly var entry in entries)
        {
            if (entry.Type > EntryType.ConfChange)
            {
                throw Malformed(m, "unknown entry type");
            }

            if (entry.Type == EntryType.ConfChange)
            {
                // Every node applies these; one that cannot be decoded would stop the cluster.
                confChanges++;
                try
                {
                    MessageCodec.DecodeConfChange(entry.Data.Span);
                }
                catch (MessageFormatException ex)
                {
                    throw Malformed(m, $"configuration change at index {entry.Index} cannot be decoded ({ex.Message})");
                }
            }
        }

        if (confChanges > 1 && m.Type == MessageType.Propose)
        {
            throw Malformed(m, "more than one configuration change in one proposal");
        }

        switch (m.Type)
        {
            case MessageType.Append:
                var previousTerm = m.LogTerm;
                for (var i = 0; i < entries.Length; i++)
                {
                    // Entries must continue the log right after Index, with terms that never go
                    // down, start at or above LogTerm and never exceed the sender's term.
                    if (m.Index > ulong.MaxValue - (ulong)entries.Length || entries[i].Index != m.Index + 1 + (ulong)i)
                    {
                        throw Malformed(m, "entries are not contiguous after Index");
                    }

                    if (entries[i].Term < previousTerm || entries[i].Term > m.Term)
                    {
                        throw Malformed(m, "entry terms out of order");
                    }

                    previousTerm = entries[i].Term;
                }

                if (m.LogTerm > m.Term)
                {
                    throw Malformed(m, "LogTerm above Term");
                }

                break;
            case MessageType.Snapshot:
                if (m.Snapshot is null || m.Snapshot.IsEmpty || m.Snapshot.Term > m.Term || m.Snapshot.Term == 0)
                {
                    throw Malformed(m, "missing or invalid snapshot");
                }

                if (m.Snapshot.ConfState.Validate() is { } broken)
                {
                    throw Malformed(m, $"snapshot configuration is invalid: {broken}");
                }

                break;
            case MessageType.Propose:
                if (entries.IsEmpty)
                {
                    throw Malformed(m, "empty proposal");
                }

                break;
            case MessageType.ProposalRefused:
                if (entries.IsEmpty || DecodeRefusal(m.RejectHint, m.From, default) is null)
                {
                    throw Malformed(m, "a refusal must carry the proposal and a known reason");
                }

                break;
            case MessageType.ReadIndex:
            case MessageType.ReadIndexResponse:
                if (entries.Length != 1)
                {
                    throw Malformed(m, "read index must carry exactly one context entry");
                }

                break;
            default:
                break;
        }
    }

    /// <summary>Whether every term and index in <paramref name="m"/> is at most <see cref="MaxTermOrIndex"/>.</summary>
    private static bool WithinLimits(Message m)
    {
        // MaxTermOrIndex is 2^63 - 1: a value is above it iff its top bit is set, so OR-ing suffices.
        if ((m.Term | m.LogTerm | m.Index | m.Commit | m.RejectHint) > MaxTermOrIndex)
        {
            return false;
        }

        foreach (ref readonly var entry in m.Entries.Span)
        {
            if ((entry.Term | entry.Index) > MaxTermOrIndex)
            {
                return false;
            }
        }

        return m.Snapshot is not { } s || (s.Term | s.Index) <= MaxTermOrIndex;
    }

    private static MessageRejectedException Malformed(Message m, string what) =>
        new(MessageRejectReason.Malformed, $"Malformed {m.Type} from {m.From}: {what}.");

    /// <summary>
    /// Steps one message. Term handling common to every role happens here (Raft §5.1: a higher
    /// term makes any node a follower; a lower term is stale), then the role's step function.
    /// </summary>
    public void Step(Message m)
    {
        if (m.Type == MessageType.ProposalRefused)
        {
            // A report, not a claim to lead: whatever its term, it changes nothing here but is
            // handed to the host, which fails the proposer's request.
            RefusedProposals.Add(new RefusedProposal(m.From, m.Entries, DecodeRefusal(m.RejectHint, m.From, m.Context.Span)!));
            return;
        }

        if (m.Term == 0)
        {
            // Local message (or a forwarded proposal / read index).
        }
        else if (m.Term > Term)
        {
            if (m.Type is MessageType.Vote or MessageType.PreVote)
            {
                var force = m.Context.Span.SequenceEqual(s_campaignTransfer);
                if (!force && InLeasePromise)
                {
                    // Thesis §4.2.3: a node that heard from a current leader within the minimum
                    // election timeout ignores vote requests, so a removed or partitioned node
                    // cannot depose a healthy leader. Not even the term is updated.
                    return;
                }
            }

            if (m.Type == MessageType.PreVote)
            {
                // A pre-vote never changes our term.
            }
            else if (m.Type == MessageType.PreVoteResponse && !m.Reject)
            {
                // The future term we asked about; the term bumps when the real campaign starts.
            }
            else if (m.Type is MessageType.Append or MessageType.Heartbeat or MessageType.Snapshot)
            {
                BecomeFollower(m.Term, m.From);
            }
            else
            {
                BecomeFollower(m.Term, 0);
            }
        }
        else if (m.Term < Term)
        {
            if ((_checkQuorum || _preVote) && m.Type is MessageType.Heartbeat or MessageType.Append)
            {
                // A stale leader (e.g. after a partition, with CheckQuorum or PreVote keeping our
                // term from reaching it) learns of the newer term from this response and steps
                // down; ignoring it would leave it stuck sending appends forever.
                Send(new Message { Type = MessageType.AppendResponse, To = m.From, From = Id, Term = Term });
            }
            else if (m.Type == MessageType.PreVote)
            {
                // Tell the pre-candidate about our term so it stops asking (etcd #8501).
                Send(new Message { Type = MessageType.PreVoteResponse, To = m.From, From = Id, Term = Term, Reject = true });
            }

            return;
        }

        if (m.Type is MessageType.Append or MessageType.Heartbeat or MessageType.Snapshot)
        {
            // From the leader of our (possibly just adopted) term: the promise window restarts.
            _ticksSinceLeaderContact = 0;
        }

        switch (m.Type)
        {
            case MessageType.Hup:
                Hup(_preVote ? CampaignType.PreElection : CampaignType.Election);
                break;
            case MessageType.Vote:
            case MessageType.PreVote:
                if (m.Term == Term && Vote == 0 && Lead == 0 && PromiseClockRunning && !m.Context.Span.SequenceEqual(s_campaignTransfer))
                {
                    // A message of a higher term (not a vote request) made this node forget the
                    // leader it promised, so it would grant this vote; the promise still stands
                    // (see _ticksSinceLeaderContact). Lease mode only; etcd grants here.
                    return;
                }

                HandleVoteRequest(m);
                break;
            default:
                _step(m);
                break;
        }
    }

    /// <summary>
    /// Raft §5.2 and §5.4.1: grant at most one vote per term, and only to a candidate whose log is
    /// at least as up to date as ours. A pre-vote is granted for a future term without recording it.
    /// </summary>
    private void HandleVoteRequest(Message m)
    {
        var canVote =
            Vote == m.From
            || (Vote == 0 && Lead == 0)
            || (m.Type == MessageType.PreVote && m.Term > Term);
        var responseType = MessageTypes.VoteResponseFor(m.Type);
        if (canVote && (_grantVoteWithoutLogCheck || Log.IsUpToDate(m.Index, m.LogTerm)))
        {
            // The response carries the candidate's term, not ours: for a pre-vote our term is
            // still lower, and the pre-candidate must recognise the answer as current.
            Send(new Message { Type = responseType, To = m.From, From = Id, Term = m.Term });
            if (m.Type == MessageType.Vote)
            {
                // Only a real vote resets the election timer and is recorded (persisted via HardState).
                _electionElapsed = 0;
                Vote = m.From;
            }
        }
        else
        {
            Send(new Message { Type = responseType, To = m.From, From = Id, Term = Term, Reject = true });
            if (!Log.IsUpToDate(m.Index, m.LogTerm))
            {
                TryCampaignAsFormerVoter();
            }
        }
    }

    // ---------------------------------------------------------------- sending

    private void Send(Message m)
    {
        if (m.From != Id && m.Type is not (MessageType.TransferLeader or MessageType.ReadIndex))
        {
            throw new InvariantViolationException($"Sending {m.Type} with From {m.From} from node {Id}.");
        }

        if (m.Type is MessageType.AppendResponse or MessageType.VoteResponse or MessageType.PreVoteResponse)
        {
            // These promise durable state (the entries acked, the vote cast): Raft Figure 2,
            // "respond after updating stable storage". Held until the host has persisted.
            MessagesAfterAppend.Add(m);
        }
        else
        {
            if (m.To == Id)
            {
                throw new InvariantViolationException($"{m.Type} addressed to self must not be sent.");
            }

            Messages.Add(m);
        }
    }

    /// <summary>Sends an append (or a snapshot, if the entries are compacted) to <paramref name="to"/> unless its progress is paused.</summary>
    public void SendAppend(ulong to) => TrySendAppend(to, sendIfEmpty: true);

    /// <summary>
    /// Sends entries from the follower's Next index, or a snapshot if they are compacted.
    /// Returns false if nothing was sent (paused, nothing to send and not asked to send empty,
    /// or the snapshot is not available yet).
    /// </summary>
    public bool TrySendAppend(ulong to, bool sendIfEmpty)
    {
        var pr = Tracker.Progress[to];
        if (pr.IsPaused)
        {
            return false;
        }

        var previousIndex = pr.Next - 1;
        if (Log.TryTerm(previousIndex, out var previousTerm) != TermLookup.Found)
        {
            return TrySendSnapshot(to, pr, requireSnapshot: true);
        }

        ReadOnlyMemory<Entry> entries = default;

        // With a full window in replicate state send only an empty append: it still carries the
        // commit index and, if earlier appends were lost, draws a response that clears the window.
        if (pr.State != ProgressState.Replicate || !pr.Inflights.Full)
        {
            if (!Log.TryEntries(pr.Next, _maxMessageBytes, out entries))
            {
                return TrySendSnapshot(to, pr, requireSnapshot: true);
            }
        }

        if (entries.IsEmpty && !sendIfEmpty)
        {
            return false;
        }

        Send(new Message
        {
            Type = MessageType.Append,
            To = to,
            From = Id,
            Term = Term,
            Index = previousIndex,
            LogTerm = previousTerm,
            Entries = entries,
            Commit = Log.Committed,
        });
        pr.SentEntries(entries.Length, EntrySizes.Encoded(entries.Span));
        pr.SentCommit = Log.Committed;
        return true;
    }

    private bool TrySendSnapshot(ulong to, Progress pr, bool requireSnapshot)
    {
        if (!pr.RecentActive)
        {
            // Don't ship a snapshot to a node we have not heard from: it may be down.
            return false;
        }

        SnapshotMetadata snapshot;
        try
        {
            snapshot = Log.Snapshot();
        }
        catch (SnapshotTemporarilyUnavailableException)
        {
            // The storage is producing one; the next heartbeat response will retry.
            return false;
        }

        if (snapshot.IsEmpty && !requireSnapshot)
        {
            // Only a snapshot can give this peer a configuration, and storage has none: the host
            // is told in Ready.PeersNeedingSnapshot (it creates one; the next heartbeat response retries).
            if (!PeersNeedingSnapshot.Contains(to))
            {
                PeersNeedingSnapshot.Add(to);
            }

            return false;
        }

        if (snapshot.IsEmpty)
        {
            throw new InvariantViolationException($"Entries needed by {to} are compacted but storage has no snapshot.");
        }

        pr.BecomeSnapshot(snapshot.Index);
        Send(new Message { Type = MessageType.Snapshot, To = to, From = Id, Term = Term, Snapshot = snapshot });
        return true;
    }

    /// <summary>
    /// Heartbeats carry <c>min(match, committed)</c> as the commit index: the follower's log is
    /// only known to match the leader's up to Match, so committing further could commit
    /// entries it holds from another leader.
    /// </summary>
    private void SendHeartbeat(ulong to, ReadOnlyMemory<byte> context)
    {
        var pr = Tracker.Progress[to];
        var commit = Math.Min(pr.Match, Log.Committed);
        pr.SentCommit = commit;
        Send(new Message { Type = MessageType.Heartbeat, To = to, From = Id, Term = Term, Commit = commit, Context = context });
    }

    public void BroadcastAppend()
    {
        foreach (var id in Tracker.MemberIds)
        {
            if (id != Id)
            {
                SendAppend(id);
            }
        }
    }

    public void BroadcastHeartbeat()
    {
        var hasRound = _readOnly.TryGetLastRoundId(out var round);
        BroadcastHeartbeat(HeartbeatContext(hasRound ? round : 0));
    }

    /// <summary>
    /// What a heartbeat carries to be echoed back: the read round it confirms, and in lease mode
    /// the tick it was sent at, which dates the follower's promise for <see cref="LeaseHolds"/>.
    /// </summary>
    private ReadOnlyMemory<byte> HeartbeatContext(ulong round)
    {
        if (_readOnlyMode == ReadOnlyMode.LeaseBased)
        {
            return ReadOnlyQueue.EncodeHeartbeatContext(round, _ticks);
        }

        return round == 0 ? default : ReadOnlyQueue.EncodeRoundId(round);
    }

    private void BroadcastHeartbeat(ReadOnlyMemory<byte> context)
    {
        foreach (var id in Tracker.MemberIds)
        {
            if (id != Id)
            {
                SendHeartbeat(id, context);
            }
        }
    }

    // ---------------------------------------------------------------- role changes

    private void Reset(ulong term)
    {
        if (Term != term)
        {
            Term = term;
            Vote = 0;
        }

        Lead = 0;
        _electionElapsed = 0;
        _heartbeatElapsed = 0;
        ResetRandomizedElectionTimeout();
        AbortLeaderTransfer();
        Tracker.ResetVotes();

        var last = Log.LastIndex();

        // Our own match is what is durable: unstable entries are acknowledged to ourselves
        // only once persisted (see AppendEntry).
        var selfMatch = Math.Min(last, Log.Unstable.Offset - 1);
        foreach (var (id, pr) in Tracker.Progress)
        {
            pr.BecomeProbe();
            pr.Match = id == Id ? selfMatch : 0;
            pr.Next = last + 1;
            pr.SentCommit = 0;
            pr.RecentActive = false;
        }

        _uncommittedBytes = 0;
        _leaseAckSentTickPlusOne.Clear();
        _leaseForfeited = false;
        _readOnly.Clear();
        _pendingReadIndexMessages.Clear();
    }

    private void ResetRandomizedElectionTimeout() =>
        _randomizedElectionTimeout = _electionTimeout + _random.Next(_electionTimeout);

    public void BecomeFollower(ulong term, ulong lead)
    {
        _step = StepFollower;
        Reset(term);
        _tick = TickElection;
        Lead = lead;
        Role = StateRole.Follower;
    }

    public void BecomeCandidate()
    {
        if (Role == StateRole.Leader)
        {
            throw new InvariantViolationException("Invalid transition: leader to candidate.");
        }

        var term = NextTerm();
        _step = StepCandidate;
        Reset(term);
        _tick = TickElection;
        Vote = Id;
        Role = StateRole.Candidate;
    }

    /// <summary>
    /// The term of our next campaign. Peers cannot bring the term near the end of the range
    /// (terms above <see cref="MaxTermOrIndex"/> are refused), so this only throws on a corrupt storage.
    /// </summary>
    private ulong NextTerm() =>
        Term < ulong.MaxValue ? Term + 1 : throw new InvariantViolationException($"Term {Term} cannot be incremented: the term space is exhausted.");

    /// <summary>Thesis §9.6: a pre-candidate keeps its term and vote; it only asks.</summary>
    public void BecomePreCandidate()
    {
        if (Role == StateRole.Leader)
        {
            throw new InvariantViolationException("Invalid transition: leader to pre-candidate.");
        }

        _step = StepCandidate;
        Tracker.ResetVotes();
        _tick = TickElection;
        Lead = 0;
        Role = StateRole.PreCandidate;
    }

    public void BecomeLeader()
    {
        if (Role == StateRole.Follower)
        {
            throw new InvariantViolationException("Invalid transition: follower to leader.");
        }

        _step = StepLeader;
        Reset(Term);
        _tick = TickHeartbeat;
        Lead = Id;
        Role = StateRole.Leader;

        // A leader outside its configuration (see TryCampaignAsFormerVoter) tracks no progress of its own.
        if (Tracker.Progress.TryGetValue(Id, out var self))
        {
            self.BecomeReplicate();
            self.RecentActive = true;
        }

        // Entries of earlier terms may hold configuration changes not applied yet; a new change
        // waits until everything up to here is applied (see PendingConfIndex).
        PendingConfIndex = Log.LastIndex();

        // Raft §5.4.2 / thesis §6.4: a new leader cannot know which entries are committed until it
        // commits one of its own term, so it appends an empty one right away. Its payload is
        // empty, so it does not count against the uncommitted-bytes quota.
        Span<Entry> empty = [new Entry(ReadOnlyMemory<byte>.Empty)];
        if (!AppendEntry(empty))
        {
            throw new InvariantViolationException("The empty entry of a new leader was refused.");
        }
    }

    private enum CampaignType
    {
        PreElection,
        Election,
        Transfer,
    }

    private void Hup(CampaignType type)
    {
        if (Role == StateRole.Leader || !Promotable)
        {
            return;
        }

        // A committed configuration change not applied yet may change who votes: campaigning
        // under the old configuration could win without a quorum of the new one.
        if (HasUnappliedConfChanges())
        {
            return;
        }

        // Voting for itself would break this node's promise to its leader, on which the leader's
        // lease rests. The election timer never fires inside the promise (it restarts whenever the
        // promise does), so this only stops an explicit Campaign(); a transfer may go ahead (the
        // leader that asked for it forfeited its lease).
        if (type != CampaignType.Transfer && PromiseClockRunning)
        {
            return;
        }

        Campaign(type);
    }

    /// <summary>
    /// Thesis §4.2.2: a server outside its latest configuration "should still start new
    /// elections, as it might still be needed until the Cnew entry is committed". Here it does so
    /// only on the evidence that it is needed: a candidate that still counts it as a voter asked
    /// for its vote, and was refused because this node's log is more up to date. Otherwise, when
    /// the removal is applied here but not known committed elsewhere, the remaining voters wait
    /// for a vote that never comes (etcd-io/etcd#10563). Once elected it counts no vote of its
    /// own, accepts no proposals, and hands over as soon as a voter holds its log
    /// (<see cref="TryStepDownAfterRemoval"/>). A learner nobody considers a voter is never asked,
    /// so it never campaigns.
    /// </summary>
    private void TryCampaignAsFormerVoter()
    {
        if (Role == StateRole.Leader || Tracker.Config.IsVoter(Id) || Tracker.Config.Voters.Count == 0 || !_stepDownOnRemoval)
        {
            return;
        }

        if (Role is StateRole.Candidate or StateRole.PreCandidate || Log.HasPendingSnapshot || HasUnappliedConfChanges())
        {
            return;
        }

        Campaign(_preVote ? CampaignType.PreElection : CampaignType.Election);
    }

    /// <summary>Whether an entry in <c>(Applied, Committed]</c> is a configuration change.</summary>
    public bool HasUnappliedConfChanges()
    {
        if (Log.Applied >= Log.Committed)
        {
            return false;
        }

        var low = Math.Max(Log.Applied, Log.FirstIndex() - 1) + 1;
        if (low > Log.Committed || !Log.TrySlice(low, Log.Committed + 1, ulong.MaxValue, out var entries))
        {
            // Compacted past the applied index: a snapshot is pending and blocks campaigning anyway.
            return false;
        }

        foreach (ref readonly var entry in entries.Span)
        {
            if (entry.Type == EntryType.ConfChange)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Raft §5.2: become candidate (or pre-candidate), vote for ourselves and request votes from
    /// every voter. Our own vote goes through <see cref="MessagesAfterAppend"/> so that it only
    /// counts once our new term and vote are durable.
    /// </summary>
    private void Campaign(CampaignType type)
    {
        ulong term;
        MessageType voteType;
        if (type == CampaignType.PreElection)
        {
            // Pre-votes are requested for the term we would campaign in.
            term = NextTerm();
            BecomePreCandidate();
            voteType = MessageType.PreVote;
        }
        else
        {
            BecomeCandidate();
            voteType = MessageType.Vote;
            term = Term;
        }

        var lastIndex = Log.LastIndex();
        var lastTerm = Log.LastTerm();
        foreach (var id in Tracker.Voters.AllIds())
        {
            if (id == Id)
            {
                Send(new Message { Type = MessageTypes.VoteResponseFor(voteType), To = Id, From = Id, Term = term });
                continue;
            }

            Send(new Message
            {
                Type = voteType,
                To = id,
                From = Id,
                Term = term,
                Index = lastIndex,
                LogTerm = lastTerm,
                Context = type == CampaignType.Transfer ? s_campaignTransfer : default,
            });
        }
    }

    private VoteResult Poll(ulong from, bool granted)
    {
        Tracker.RecordVote(from, granted);
        return Tracker.TallyVotes().Result;
    }

    // ---------------------------------------------------------------- ticks

    private void TickElection()
    {
        _electionElapsed++;
        if (_electionElapsed < _randomizedElectionTimeout)
        {
            return;
        }

        if (Promotable)
        {
            _electionElapsed = 0;
            Step(new Message { Type = MessageType.Hup, From = Id });
        }
        else if (Role is StateRole.Candidate or StateRole.PreCandidate)
        {
            // A former voter's campaign (TryCampaignAsFormerVoter) cannot time out into a new one:
            // it is not promotable. If it has not won within an election timeout (a vote request
            // lost, or ignored by a voter keeping its lease promise, which sends no rejection),
            // give it up, so that the next refused vote request starts a fresh one; otherwise it
            // would stay a candidate for ever and the voters that need it would wait for ever.
            BecomeFollower(Term, 0);
        }
    }

    private void TickHeartbeat()
    {
        _heartbeatElapsed++;
        _electionElapsed++;

        if (_electionElapsed >= _electionTimeout)
        {
            _electionElapsed = 0;
            if (_checkQuorum)
            {
                Step(new Message { Type = MessageType.CheckQuorum, From = Id });
            }
        }

        if (Role != StateRole.Leader)
        {
            return;
        }

        // A transfer that has not completed within an election timeout has failed (the target
        // may be down); resume accepting proposals. Timed on its own clock: resetting the
        // CheckQuorum clock instead would let transfer requests keep a partitioned leader alive.
        if (LeadTransferee != 0 && ++_transferElapsed >= _electionTimeout)
        {
            AbortLeaderTransfer();
        }

        if (_heartbeatElapsed >= _heartbeatTimeout)
        {
            _heartbeatElapsed = 0;
            Step(new Message { Type = MessageType.Beat, From = Id });
        }
    }

    // ---------------------------------------------------------------- leader

    private void StepLeader(Message m)
    {
        switch (m.Type)
        {
            case MessageType.Beat:
                BroadcastHeartbeat();
                return;
            case MessageType.CheckQuorum:
                // Thesis §6.2: step down if no quorum was heard from during the last election
                // timeout; clients then find a leader that can actually commit.
                if (!Tracker.QuorumActive(Id))
                {
                    BecomeFollower(Term, 0);
                }

                foreach (var (id, pr) in Tracker.Progress)
                {
                    if (id != Id)
                    {
                        pr.RecentActive = false;
                    }
                }

                return;
            case MessageType.Propose:
                HandlePropose(m);
                return;
            case MessageType.ReadIndex:
                HandleReadIndexAsLeader(m);
                return;
            default:
                break;
        }

        if (!Tracker.Progress.TryGetValue(m.From, out var progress))
        {
            // Not a member (removed, or never added): ignore.
            return;
        }

        switch (m.Type)
        {
            case MessageType.AppendResponse:
                HandleAppendResponse(m, progress);
                break;
            case MessageType.HeartbeatResponse:
                HandleHeartbeatResponse(m, progress);
                break;
            case MessageType.SnapshotStatus:
                if (progress.State != ProgressState.Snapshot)
                {
                    return;
                }

                if (m.Reject)
                {
                    progress.PendingSnapshot = 0;
                }

                // Success or not, probe from just past the snapshot; wait for the follower's
                // response (or a heartbeat) before sending more.
                progress.BecomeProbe();
                progress.MsgAppFlowPaused = true;
                break;
            case MessageType.Unreachable:
                // An append was probably lost: stop streaming optimistically and probe.
                if (progress.State == ProgressState.Replicate)
                {
                    progress.BecomeProbe();
                }

                break;
            case MessageType.TransferLeader:
                HandleTransferLeader(m, progress);
                break;
            default:
                break;
        }
    }

    private void HandlePropose(Message m)
    {
        // A leader outside the voters only finishes handing over (see TryStepDownAfterRemoval).
        if (!Tracker.Config.IsVoter(Id))
        {
            throw new ProposalDroppedException(ProposalDropReason.NotInConfiguration);
        }

        if (LeadTransferee != 0)
        {
            // Thesis §3.10: stop accepting proposals during a transfer so the target can catch up.
            throw new ProposalDroppedException(ProposalDropReason.LeadershipTransferInProgress);
        }

        // The proposer's entries carry no term or index yet; stamp copies.
        var source = m.Entries.Span;
        var confChangeOffset = -1;
        for (var i = 0; i < source.Length; i++)
        {
            if (source[i].Type == EntryType.ConfChange)
            {
                ValidateConfChangeProposal(source[i]);
                confChangeOffset = i;
            }
        }

        if (_scratch.Length < source.Length)
        {
            _scratch = new Entry[Math.Max(source.Length, _scratch.Length * 2)];
        }

        var stamped = _scratch.AsSpan(0, source.Length);
        source.CopyTo(stamped);
        var appended = AppendEntry(stamped);

        // The log copied them; drop our references to the proposer's data.
        stamped.Clear();
        if (!appended)
        {
            throw new ProposalDroppedException(ProposalDropReason.UncommittedSizeLimitExceeded);
        }

        if (confChangeOffset >= 0)
        {
            PendingConfIndex = Log.LastIndex() - (ulong)(source.Length - 1 - confChangeOffset);
        }

        BroadcastAppend();
    }

    /// <summary>
    /// Refuses a configuration change the leader cannot append: another one is pending, or it is
    /// invalid against the current configuration. Since nothing is pending, every change in the
    /// log is applied, so the tracker's configuration is exactly the one this change will apply
    /// to, on every node. Unlike etcd-io/raft the proposer gets a specific error instead of the
    /// change being silently replaced by an empty entry (etcd-io/raft#354).
    /// </summary>
    private void ValidateConfChangeProposal(in Entry entry)
    {
        var change = MessageCodec.DecodeConfChange(entry.Data.Span);
        if (PendingConfIndex > Log.Applied)
        {
            throw new ConfChangeRejectedException(
                ConfChangeRejectReason.ChangePending,
                $"Configuration change rejected (ChangePending): {change} must wait until the change at index {PendingConfIndex} is applied (applied index {Log.Applied}).");
        }

        ConfChanger.Apply(Tracker.Config, change);
    }

    // ---------------------------------------------------------------- membership

    /// <summary>Records the configuration changes among committed entries handed to the host, in order.</summary>
    public void OnCommittedEntriesHandedOut(ReadOnlySpan<Entry> committed)
    {
        foreach (ref readonly var entry in committed)
        {
            if (entry.Type == EntryType.ConfChange)
            {
                _confChangesHandedOut.Enqueue((entry.Index, entry.Data));
            }
        }
    }

    /// <summary>The host applied a snapshot (handed out in a Ready, on <see cref="RawNode.Advance"/>): its configuration is now the applied one.</summary>
    public void OnSnapshotApplied(SnapshotMetadata metadata) => AppliedConfig = metadata.ConfState;

    /// <summary>
    /// On <see cref="RawNode.Advance"/>: the host must have applied every configuration change the
    /// Ready handed out, up to its last committed entry <paramref name="committedUpTo"/> (each
    /// changes who votes; skipping one would leave this node with a configuration no other node
    /// has). Changes of later outstanding Readies may still wait.
    /// </summary>
    public void CheckConfChangesApplied(ulong committedUpTo)
    {
        if (_confChangesHandedOut.TryPeek(out var left) && left.Index <= committedUpTo)
        {
            throw new InvariantViolationException(
                $"Node {Id}: Advance called before ApplyConfChange for the committed configuration change at index {left.Index}.");
        }
    }

    /// <summary>
    /// Applies a committed configuration change (the host calls this when it applies the entry)
    /// and returns the configuration as of that entry. Every node applies the same changes in log
    /// order, so a change that was valid when the leader appended it is valid here.
    /// </summary>
    /// <remarks>
    /// The host may step a snapshot between <see cref="RawNode.GetReady"/> and
    /// <see cref="RawNode.Advance"/> (an async host keeps stepping while it persists and applies).
    /// <see cref="Restore"/> only installs a snapshot above the commit index, so above every entry
    /// the outstanding Ready hands out (etcd-io/raft's rule), but its configuration already
    /// includes the changes among those entries. Applying them again to the tracker would fail
    /// (a learner added twice) or, worse, succeed and diverge (a joint configuration entered on
    /// top of the one it left). So the change is applied to <see cref="AppliedConfig"/> — the
    /// configuration as of the previous applied entry, which the snapshot does not touch — and
    /// that result is what the host persists with this entry's index; the tracker only follows
    /// when it does not already reflect a later index. Both are the configuration every node has
    /// at their index, so nothing diverges; the handed-out queue makes sure the host applies
    /// exactly the changes it was given, in order.
    /// </remarks>
    public ConfState ApplyConfChange(ConfChange change)
    {
        if (!_confChangesHandedOut.TryDequeue(out var handedOut))
        {
            throw new InvariantViolationException(
                $"Node {Id}: ApplyConfChange({change}) called, but no committed configuration change was handed out in a Ready and not applied yet.");
        }

        if (!MessageCodec.EncodeConfChange(change).AsSpan().SequenceEqual(handedOut.Data.Span))
        {
            throw new InvariantViolationException(
                $"Node {Id}: ApplyConfChange({change}) does not match the configuration change at index {handedOut.Index} handed out for applying: changes must be applied in order.");
        }

        ConfState next;
        try
        {
            next = ConfChanger.Apply(AppliedConfig, change);
        }
        catch (ConfChangeRejectedException ex)
        {
            throw new InvariantViolationException(
                $"Node {Id} cannot apply committed configuration change {change} at index {handedOut.Index} to {AppliedConfig}: {ex.Message} "
                + "Was the configuration persisted with the applied index?");
        }

        if (handedOut.Index > _trackerConfigIndex && !Tracker.Config.Equals(AppliedConfig))
        {
            throw new InvariantViolationException(
                $"Node {Id}: the tracker's configuration {Tracker.Config} differs from the applied configuration {AppliedConfig} with no snapshot ahead of index {handedOut.Index}.");
        }

        AppliedConfig = next;
        if (handedOut.Index <= _trackerConfigIndex)
        {
            // A snapshot at or past this index was restored since the entry was handed out: the
            // tracker already holds a later configuration, which includes this change.
            return next;
        }

        _trackerConfigIndex = handedOut.Index;
        var added = Tracker.SwitchTo(next, Log.LastIndex() + 1);
        foreach (var id in added)
        {
            // A new member counts as active so that CheckQuorum does not depose the leader
            // before it had a chance to answer.
            Tracker.Progress[id].RecentActive = true;
        }

        if (Role != StateRole.Leader)
        {
            return next;
        }

        if (TryStepDownAfterRemoval())
        {
            return next;
        }

        if (LeadTransferee != 0 && !next.IsVoter(LeadTransferee))
        {
            AbortLeaderTransfer();
        }

        // The quorum changed: something may commit now. New members get a probe right away.
        if (TryAdvanceCommit())
        {
            ReleasePendingReadIndexMessages();
            BroadcastAppend();
        }
        else
        {
            foreach (var id in Tracker.MemberIds)
            {
                if (id != Id)
                {
                    TrySendAppend(id, sendIfEmpty: added.Contains(id));
                }
            }
        }

        return next;
    }

    /// <summary>
    /// Thesis §4.2.2: a leader outside the configuration it applied steps down. etcd-io/raft
    /// keeps leading by default (StepDownOnRemoval off) and the group is stuck with a leader that
    /// accepts no proposals (etcd-io/etcd#11038, etcd-io/raft#83).
    /// It steps down only once a voter of the new configuration holds its whole log, and tells
    /// that voter to campaign. Stepping down earlier can deadlock: a voter that never learned
    /// the removal committed still counts this node as a voter, and this node, with a longer
    /// log, would refuse it its vote while it can no longer campaign itself (etcd-io/etcd#10563).
    /// Meanwhile it accepts no proposals, so its log stops growing.
    /// </summary>
    private bool TryStepDownAfterRemoval()
    {
        if (Role != StateRole.Leader || !_stepDownOnRemoval || Tracker.Config.IsVoter(Id))
        {
            return false;
        }

        var last = Log.LastIndex();
        foreach (var id in Tracker.Voters.Incoming.Ids)
        {
            if (Tracker.Progress[id].Match == last)
            {
                SendTimeoutNow(id);
                BecomeFollower(Term, 0);
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Called once committed entries are applied: a leader whose joint configuration asks to be
    /// left automatically proposes the leave as soon as the change that entered it is applied.
    /// </summary>
    public void OnApplied()
    {
        if (Role != StateRole.Leader || !Tracker.AutoLeave || Log.Applied < PendingConfIndex)
        {
            return;
        }

        Span<Entry> leave = [new Entry(0, 0, EntryType.ConfChange, MessageCodec.EncodeConfChange(ConfChange.LeaveJoint()))];
        if (!AppendEntry(leave))
        {
            throw new InvariantViolationException("The automatic leave of a joint configuration was refused.");
        }

        PendingConfIndex = Log.LastIndex();
        BroadcastAppend();
    }

    /// <summary>
    /// Appends entries to the leader's log with the current term. The leader's acknowledgement of
    /// its own entries is a message to itself delivered after they are persisted, so its vote
    /// in the commit count is durable (thesis §10.2.1: writing in parallel with replication).
    /// </summary>
    private bool AppendEntry(Span<Entry> entries)
    {
        var last = Log.LastIndex();
        for (var i = 0; i < entries.Length; i++)
        {
            entries[i] = entries[i].WithPosition(Term, last + 1 + (ulong)i);
        }

        if (!TryIncreaseUncommittedBytes(entries))
        {
            return false;
        }

        last = Log.Append(entries);
        Send(new Message { Type = MessageType.AppendResponse, To = Id, From = Id, Term = Term, Index = last });
        return true;
    }

    private bool TryIncreaseUncommittedBytes(ReadOnlySpan<Entry> entries)
    {
        var size = EntrySizes.Payload(entries);

        // Always admit a proposal when nothing is uncommitted, so that an entry larger than
        // the quota can still make progress; and empty entries never count.
        if (_uncommittedBytes > 0 && size > 0 && (_uncommittedBytes + size > _maxUncommittedBytes || _uncommittedBytes + size < size))
        {
            return false;
        }

        _uncommittedBytes += size;
        return true;
    }

    /// <summary>Committed entries were applied: release their share of the uncommitted quota.</summary>
    public void ReduceUncommittedBytes(ReadOnlySpan<Entry> applied)
    {
        var size = EntrySizes.Payload(applied);
        _uncommittedBytes = size > _uncommittedBytes ? 0 : _uncommittedBytes - size;
    }

    private void HandleAppendResponse(Message m, Progress pr)
    {
        if (m.Index > Log.LastIndex() && !m.Reject)
        {
            // Acknowledging entries we never sent. The term matches ours, and a leader's log
            // never shrinks within its term, so this is a broken or hostile peer.
            throw Malformed(m, $"acknowledges index {m.Index} beyond the leader's last index {Log.LastIndex()}");
        }

        pr.RecentActive = true;

        if (m.Reject && m.Index == 0)
        {
            // The empty prefix always matches, so only a follower without a configuration (a new
            // node that joined empty) refuses it: it can only be caught up by a snapshot. Without
            // one yet, wait for the next heartbeat response rather than ping-pong.
            pr.BecomeProbe();
            if (!TrySendSnapshot(m.From, pr, requireSnapshot: false))
            {
                pr.MsgAppFlowPaused = true;
            }

            return;
        }

        if (m.Reject)
        {
            // Fast backtracking (§5.3): the follower's hint names the last entry that may match;
            // if it also sent that entry's term, skip every entry of ours with a higher term.
            var nextProbe = m.RejectHint;
            if (m.LogTerm > 0)
            {
                nextProbe = Log.FindConflictByTerm(Math.Min(m.RejectHint, Log.LastIndex()), m.LogTerm).Index;
            }

            if (pr.MaybeDecrTo(m.Index, nextProbe))
            {
                if (pr.State == ProgressState.Replicate)
                {
                    pr.BecomeProbe();
                }

                SendAppend(m.From);
            }

            return;
        }

        if (pr.MaybeUpdate(m.Index) || (pr.Match == m.Index && pr.State == ProgressState.Probe))
        {
            switch (pr.State)
            {
                case ProgressState.Probe:
                    pr.BecomeReplicate();
                    break;
                case ProgressState.Snapshot when pr.Match + 1 >= Log.FirstIndex():
                    // The follower caught up past the compaction point (via the snapshot or
                    // otherwise): resume normal replication.
                    pr.BecomeProbe();
                    pr.BecomeReplicate();
                    break;
                case ProgressState.Replicate:
                    pr.Inflights.FreeLE(m.Index);
                    break;
                default:
                    break;
            }

            if (TryAdvanceCommit())
            {
                ReleasePendingReadIndexMessages();
                BroadcastAppend();
            }
            else if (m.From != Id && pr.CanBumpCommit(Log.Committed))
            {
                // The commit index moved on while this follower was paused (e.g. probing):
                // tell it now rather than at the next heartbeat.
                SendAppend(m.From);
            }

            if (m.From != Id)
            {
                // The window may have opened: send as much as it allows now.
                while (TrySendAppend(m.From, sendIfEmpty: false))
                {
                }
            }

            if (m.From == LeadTransferee && pr.Match == Log.LastIndex())
            {
                // Thesis §3.10: the transferee has caught up; tell it to campaign now.
                SendTimeoutNow(m.From);
            }

            TryStepDownAfterRemoval();
        }
    }

    private void HandleHeartbeatResponse(Message m, Progress pr)
    {
        pr.RecentActive = true;
        pr.MsgAppFlowPaused = false;
        if (pr.Match < Log.LastIndex() || pr.State == ProgressState.Probe)
        {
            SendAppend(m.From);
        }

        if (!ReadOnlyQueue.TryDecodeHeartbeatContext(m.Context.Span, out var round, out var sentTick))
        {
            return;
        }

        if (sentTick is { } tick && tick <= _ticks && _readOnlyMode == ReadOnlyMode.LeaseBased)
        {
            // Same term (Step dropped older ones), so this answers one of our own heartbeats: the
            // follower received it no earlier than it was sent, and promised from then on.
            var current = _leaseAckSentTickPlusOne.GetValueOrDefault(m.From);
            _leaseAckSentTickPlusOne[m.From] = Math.Max(current, tick + 1);
        }

        if (round == 0)
        {
            return;
        }

        var acks = _readOnly.RecordAck(round, m.From);
        if (acks is null || Tracker.Voters.Tally(acks) != VoteResult.Won)
        {
            return;
        }

        foreach (var read in _readOnly.Release(round))
        {
            RespondToReadIndex(read.Request, read.Index);
        }
    }

    /// <summary>
    /// Raft §5.4.2: commit the highest index a quorum has acknowledged, but only if it is an entry
    /// of the current term (earlier-term entries then commit indirectly, Figure 8).
    /// </summary>
    public bool TryAdvanceCommit() => Log.TryCommit(Tracker.Committed(), Term);

    private bool CommittedEntryInCurrentTerm() =>
        Log.TryTerm(Log.Committed, out var term) == TermLookup.Found && term == Term;

    private void HandleReadIndexAsLeader(Message m)
    {
        // Thesis §6.4 step 1: until an entry of this term is committed, the leader does not know
        // the commit index of its predecessor; postpone the request. This holds for a single
        // voter too (unlike etcd): after a restart its persisted commit index may lag what was
        // already applied, since commit-only changes need not be synced.
        if (!CommittedEntryInCurrentTerm())
        {
            _pendingReadIndexMessages.Add(m);
            return;
        }

        ServeReadIndex(m);
    }

    private void ServeReadIndex(Message m)
    {
        // A single voter needs no confirmation: nobody else can have been elected. In lease mode
        // a leader answers at once while its lease holds, and otherwise falls back to the
        // quorum-safe round below (the read is delayed, never dropped or answered stale).
        if (Tracker.IsSingleton(Id) || LeaseHolds())
        {
            RespondToReadIndex(m, Log.Committed);
            return;
        }

        // Thesis §6.4 step 3: confirm leadership with a fresh heartbeat round, whose id is unique
        // to this request and is the only thing a heartbeat response can confirm.
        var round = _nextReadRoundId++;
        _readOnly.Add(round, Log.Committed, m);
        _readOnly.RecordAck(round, Id);
        BroadcastHeartbeat(HeartbeatContext(round));
    }

    /// <summary>
    /// Whether the leader's lease holds now (thesis §6.4.1, made exact). Each voter that
    /// acknowledged a heartbeat sent at leader tick <c>s</c> received it no earlier than
    /// <c>s</c>, and from then on grants no vote for an election timeout <c>E</c> of its own clock
    /// (<see cref="InLeasePromise"/>). Any new leader needs a vote from a quorum of every half of
    /// the configuration, so from one of the voters behind <c>L</c> = the quorum-th most recent
    /// send tick acknowledged (the oldest acknowledgement that a quorum has matched or bettered,
    /// both halves of a joint configuration; this node counts as acknowledging now). No other
    /// leader can therefore exist before <c>L + E</c> on that voter's clock, and the leader answers
    /// lease reads while its own clock is below <c>L + E - LeaseDriftMarginTicks</c>: safe as long
    /// as, while a follower counts <c>E</c> ticks, the leader counts at least
    /// <c>E - LeaseDriftMarginTicks</c> (with ticks at arbitrary moments: follower clock rate at
    /// most <c>(E - 1) / (E - margin)</c> of the leader's, one tick of each lost to granularity). etcd-io/raft instead answers whenever it has not yet
    /// noticed a lost quorum, checked once per election timeout, so a partitioned leader serves
    /// stale reads for up to another timeout even with perfect clocks (issue 10). A leader that sent
    /// TimeoutNow this term has no lease: the transfer's campaign ignores the promises.
    /// </summary>
    private bool LeaseHolds()
    {
        if (_readOnlyMode != ReadOnlyMode.LeaseBased || _leaseForfeited || Role != StateRole.Leader)
        {
            return false;
        }

        var quorumSentTickPlusOne = Tracker.Voters.CommittedIndex(new LeaseAcks(this));
        if (quorumSentTickPlusOne == 0 || quorumSentTickPlusOne == ulong.MaxValue)
        {
            return false;
        }

        var leaseStart = quorumSentTickPlusOne - 1;
        if (leaseStart > _ticks)
        {
            throw new InvariantViolationException($"Lease start {leaseStart} is after the leader's clock {_ticks}.");
        }

        return _ticks - leaseStart < (ulong)(_electionTimeout - _leaseDriftMarginTicks);
    }

    /// <summary>The lease acknowledgements as the quorum arithmetic reads acked indexes (send tick + 1; this node: now + 1).</summary>
    private readonly struct LeaseAcks(RaftCore core) : IAckedIndexer
    {
        public bool TryGetAckedIndex(ulong id, out ulong index)
        {
            if (id == core.Id)
            {
                index = core._ticks + 1;
                return true;
            }

            return core._leaseAckSentTickPlusOne.TryGetValue(id, out index);
        }
    }

    private void ReleasePendingReadIndexMessages()
    {
        if (_pendingReadIndexMessages.Count == 0 || !CommittedEntryInCurrentTerm())
        {
            return;
        }

        var pending = _pendingReadIndexMessages.ToArray();
        _pendingReadIndexMessages.Clear();
        foreach (var m in pending)
        {
            ServeReadIndex(m);
        }
    }

    private void RespondToReadIndex(Message request, ulong index)
    {
        if (request.From == 0 || request.From == Id)
        {
            ReadStates.Add(new ReadState(index, request.Entries.Span[0].Data));
            return;
        }

        Send(new Message
        {
            Type = MessageType.ReadIndexResponse,
            To = request.From,
            From = Id,
            Term = Term,
            Index = index,
            Entries = request.Entries,
        });
    }

    private void HandleTransferLeader(Message m, Progress pr)
    {
        if (pr.IsLearner)
        {
            return;
        }

        var transferee = m.From;
        if (LeadTransferee != 0)
        {
            if (LeadTransferee == transferee)
            {
                return;
            }

            AbortLeaderTransfer();
        }

        if (transferee == Id)
        {
            return;
        }

        // The transfer must complete within an election timeout (checked in TickHeartbeat).
        _transferElapsed = 0;
        LeadTransferee = transferee;
        if (pr.Match == Log.LastIndex())
        {
            SendTimeoutNow(transferee);
        }
        else
        {
            SendAppend(transferee);
        }
    }

    private void SendTimeoutNow(ulong to)
    {
        _leaseForfeited = true;
        Send(new Message { Type = MessageType.TimeoutNow, To = to, From = Id, Term = Term });
    }

    public void AbortLeaderTransfer() => LeadTransferee = 0;

    // ---------------------------------------------------------------- candidate

    private void StepCandidate(Message m)
    {
        var myResponseType = Role == StateRole.PreCandidate ? MessageType.PreVoteResponse : MessageType.VoteResponse;
        switch (m.Type)
        {
            case MessageType.Propose:
                throw new ProposalDroppedException(ProposalDropReason.NoLeader);
            case MessageType.Append:
                // A leader exists for this term (§5.2): give up.
                BecomeFollower(m.Term, m.From);
                HandleAppendEntries(m);
                break;
            case MessageType.Heartbeat:
                BecomeFollower(m.Term, m.From);
                HandleHeartbeat(m);
                break;
            case MessageType.Snapshot:
                BecomeFollower(m.Term, m.From);
                HandleSnapshot(m);
                break;
            case var t when t == myResponseType:
                switch (Poll(m.From, !m.Reject))
                {
                    case VoteResult.Won:
                        if (Role == StateRole.PreCandidate)
                        {
                            Campaign(CampaignType.Election);
                        }
                        else
                        {
                            BecomeLeader();
                            BroadcastAppend();
                        }

                        break;
                    case VoteResult.Lost:
                        // Stay in the current term; the election timer decides when to retry.
                        BecomeFollower(Term, 0);
                        break;
                    default:
                        break;
                }

                break;
            default:
                break;
        }
    }

    // ---------------------------------------------------------------- follower

    private void StepFollower(Message m)
    {
        switch (m.Type)
        {
            case MessageType.Propose:
                if (Lead == 0)
                {
                    throw new ProposalDroppedException(ProposalDropReason.NoLeader);
                }

                if (_disableProposalForwarding)
                {
                    throw new ProposalDroppedException(ProposalDropReason.ForwardingDisabled);
                }

                Send(new Message { Type = MessageType.Propose, To = Lead, From = Id, Entries = m.Entries });
                break;
            case MessageType.Append:
                _electionElapsed = 0;
                Lead = m.From;
                HandleAppendEntries(m);
                break;
            case MessageType.Heartbeat:
                _electionElapsed = 0;
                Lead = m.From;
                HandleHeartbeat(m);
                break;
            case MessageType.Snapshot:
                _electionElapsed = 0;
                Lead = m.From;
                HandleSnapshot(m);
                break;
            case MessageType.TransferLeader:
                if (Lead != 0)
                {
                    Send(new Message { Type = MessageType.TransferLeader, To = Lead, From = m.From, Term = Term });
                }

                break;
            case MessageType.TimeoutNow:
                // Thesis §3.10: campaign immediately, bypassing PreVote and the voters' leases.
                Hup(CampaignType.Transfer);
                break;
            case MessageType.ReadIndex:
                if (Lead != 0)
                {
                    // A request from another node (that took us for the leader) keeps its
                    // requester as From, so the leader answers it rather than us (as etcd does).
                    Send(new Message { Type = MessageType.ReadIndex, To = Lead, From = m.From == 0 ? Id : m.From, Entries = m.Entries });
                }

                break;
            case MessageType.ReadIndexResponse:
                ReadStates.Add(new ReadState(m.Index, m.Entries.Span[0].Data));
                break;
            default:
                break;
        }
    }

    /// <summary>
    /// AppendEntries receiver (Raft §5.3, Figure 2). On a mismatch the rejection carries a hint
    /// (the last index that may match, and its term) so the leader can skip a whole term at once.
    /// </summary>
    private void HandleAppendEntries(Message m)
    {
        if (Tracker.Config.Voters.Count == 0)
        {
            // No configuration: this node joined with empty storage. The log does not record the
            // bootstrap configuration, so replaying it from the start would build a wrong one
            // (and could make this node think it is alone). Refuse, so the leader sends a snapshot.
            Send(new Message { Type = MessageType.AppendResponse, To = m.From, From = Id, Term = Term, Index = m.Index, Reject = true });
            return;
        }

        if (m.Index < Log.Committed)
        {
            // Everything up to our commit index already matches; tell the leader where we are.
            Send(new Message { Type = MessageType.AppendResponse, To = m.From, From = Id, Term = Term, Index = Log.Committed });
            return;
        }

        if (Log.TryAppend(m.Index, m.LogTerm, m.Commit, m.Entries, out var lastNew))
        {
            Send(new Message { Type = MessageType.AppendResponse, To = m.From, From = Id, Term = Term, Index = lastNew });
            return;
        }

        var hintIndex = Math.Min(m.Index, Log.LastIndex());
        var (index, term) = Log.FindConflictByTerm(hintIndex, m.LogTerm);
        Send(new Message
        {
            Type = MessageType.AppendResponse,
            To = m.From,
            From = Id,
            Term = Term,
            Index = m.Index,
            Reject = true,
            RejectHint = index,
            LogTerm = term,
        });
    }

    private void HandleHeartbeat(Message m)
    {
        // The leader sends min(match, committed), and what we acknowledged is durable, so the
        // commit is normally within our log. If it is not (the host lost state it had promised
        // durable, e.g. an acknowledged snapshot), commit what we have rather than refuse the
        // leader and stall (etcd panics here): a leader change then repairs the log.
        Log.CommitTo(Math.Min(m.Commit, Log.LastIndex()));
        Send(new Message { Type = MessageType.HeartbeatResponse, To = m.From, From = Id, Term = Term, Context = m.Context });
    }

    private void HandleSnapshot(Message m)
    {
        var snapshot = m.Snapshot!;
        var index = Restore(snapshot) ? Log.LastIndex() : Log.Committed;
        Send(new Message { Type = MessageType.AppendResponse, To = m.From, From = Id, Term = Term, Index = index });
    }

    /// <summary>Installs a snapshot from the leader; false if it brings nothing new.</summary>
    private bool Restore(SnapshotMetadata meta)
    {
        if (meta.Index <= Log.Committed)
        {
            return false;
        }

        // A snapshot whose configuration does not include us is still the leader's committed
        // state: it predates the change that added us (a new node catches up from the leader's
        // latest snapshot, which may be older than its addition), and the log after it adds us.
        // etcd-io/raft drops such snapshots only because its code assumes a progress for itself.
        var conf = meta.ConfState;
        if (Log.MatchTerm(meta.Index, meta.Term))
        {
            // We already hold the entry the snapshot ends at: just fast-forward the commit index
            // (the leader's snapshot proves it committed).
            Log.CommitTo(meta.Index);
            return false;
        }

        // Invariant (etcd-io/raft's rule): a snapshot is installed only above the commit index, so
        // above every committed entry a Ready outstanding now hands out for applying. Changes among
        // those are applied to AppliedConfig, not to the tracker (see ApplyConfChange).
        Log.Restore(meta);
        var tracker = new ProgressTracker(Tracker.MaxInflight, Tracker.MaxInflightBytes);
        tracker.Reset(conf, Log.LastIndex() + 1);
        Tracker = tracker;
        _trackerConfigIndex = meta.Index;
        return true;
    }

    // ---------------------------------------------------------------- status

    public RaftStatus GetStatus()
    {
        var progress = new Dictionary<ulong, ProgressStatus>();
        if (Role == StateRole.Leader)
        {
            foreach (var (id, pr) in Tracker.Progress)
            {
                progress[id] = new ProgressStatus(
                    pr.Match, pr.Next, pr.State, pr.IsLearner, pr.RecentActive, pr.IsPaused, pr.Inflights.Count, pr.PendingSnapshot);
            }
        }

        return new RaftStatus
        {
            Id = Id,
            HardState = HardState,
            SoftState = SoftState,
            Applied = Log.Applied,
            LeadTransferee = LeadTransferee,
            Config = Tracker.ToConfState(),
            Progress = progress,
        };
    }
}
