using EmbeddedRaft.Consensus.Core;
using EmbeddedRaft.Consensus.Membership;
using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Tests.Support;

/// <summary>
/// A <see cref="RawNode"/> with a <see cref="MemoryStorage"/> and a host loop that follows the
/// Ready contract exactly: persist, collect messages, record what was applied, advance.
/// </summary>
internal sealed class TestNode
{
    private readonly Queue<Ready> _pipeline = new();

    public TestNode(RaftOptions options, MemoryStorage storage)
    {
        Options = options;
        Storage = storage;
        Node = new RawNode(options, storage);
        Config = storage.InitialState().ConfState;
    }

    public static RaftOptions DefaultOptions(ulong id, int election = 10, int heartbeat = 1) =>
        Seeded(id) with { ElectionTimeoutTicks = election, HeartbeatTimeoutTicks = heartbeat, MaxSizePerMessageBytes = ulong.MaxValue };

    /// <summary>
    /// Options for node <paramref name="id"/> with an explicit jitter seed derived from the id, so
    /// that elections, traces and failures replay exactly (an unset <see cref="RaftOptions.RandomSeed"/>
    /// draws a fresh seed from the operating system's random source on every run). The formula is
    /// the one the core used before that change, so recorded expectations stay valid.
    /// </summary>
    public static RaftOptions Seeded(ulong id) =>
        new(id) { RandomSeed = (id * 0x9E3779B97F4A7C15UL) ^ 0x5DEECE66DUL };

    public static TestNode Create(ulong id, ulong[] voters, int election = 10, int heartbeat = 1) =>
        new(DefaultOptions(id, election, heartbeat), MemoryStorage.WithVoters(voters));

    public RaftOptions Options { get; }

    public RawNode Node { get; private set; }

    public MemoryStorage Storage { get; private set; }

    public RaftCore Core => Node.Core;

    public ulong Id => Node.Id;

    /// <summary>Every entry applied, in order (snapshots reset it to their index).</summary>
    public List<Entry> Applied { get; } = [];

    public List<ReadState> ReadStates { get; } = [];

    /// <summary>Called for each committed entry as it is applied (the randomized checkers hook in here).</summary>
    public Action<TestNode, Entry>? Applying { get; set; }

    /// <summary>The last index applied (entry or snapshot).</summary>
    public ulong AppliedIndex { get; private set; }

    /// <summary>The configuration as of <see cref="AppliedIndex"/> (persisted with it, as a host must).</summary>
    public ConfState Config { get; private set; }

    /// <summary>Every configuration change applied, with its index and the resulting configuration.</summary>
    public List<(ulong Index, ConfChange Change, ConfState Result)> ConfChangesApplied { get; } = [];

    public void Step(Message m) => Node.Step(m);

    /// <summary>Handles every Ready until there is none; returns all messages to send.</summary>
    public List<Message> ReadMessages()
    {
        var all = new List<Message>();
        for (var guard = 0; Node.HasReady(); guard++)
        {
            if (guard > 10_000)
            {
                throw new InvalidOperationException("Node never stops producing Readies.");
            }

            var rd = Node.GetReady();
            all.AddRange(rd.Messages);
            Persist(rd);
            all.AddRange(rd.MessagesAfterPersist);
            Apply(rd);
            Node.Advance();
        }

        return all;
    }

    /// <summary>A Ready taken (persisted, its messages sent) but not yet applied and advanced.</summary>
    public Ready? Held { get; private set; }

    /// <summary>
    /// Takes a Ready and handles it up to applying: persists it and returns every message it
    /// sends (both kinds may go, the state is durable), then holds it. Until <see cref="FinishHeld"/>
    /// the node keeps stepping and ticking, as under an async host that applies in the background.
    /// </summary>
    public List<Message> TakeAndHold()
    {
        if (Held is not null)
        {
            throw new InvalidOperationException("A Ready is already held.");
        }

        var rd = Node.GetReady();
        var messages = new List<Message>(rd.Messages);
        Persist(rd);
        messages.AddRange(rd.MessagesAfterPersist);
        Held = rd;
        return messages;
    }

    /// <summary>
    /// How many Readies the node may have outstanding (<see cref="RawNode.MaxOutstandingReadies"/>;
    /// kept across restarts). Above 1 the host model is <see cref="TakePipelined"/> and
    /// <see cref="FinishOldestPipelined"/>.
    /// </summary>
    public int PipelineDepth
    {
        get => Node.MaxOutstandingReadies;
        set => Node.MaxOutstandingReadies = value;
    }

    /// <summary>Readies taken and written but not yet durable, oldest first (an asynchronous-writes host).</summary>
    public int Pipelined => _pipeline.Count;

    /// <summary>Readies <see cref="TakePipelined"/> took while an earlier one was still outstanding.</summary>
    public int TakenBesideOthers { get; private set; }

    /// <summary>Whether a Ready is outstanding (held or pipelined) while the node keeps stepping and ticking.</summary>
    public bool IsHolding => Held is not null || _pipeline.Count > 0;

    /// <summary>
    /// An asynchronous-writes host takes the next Ready while earlier ones are still being made
    /// durable: it writes it (storage is the page cache here: readable at once) and returns the
    /// messages that may leave now (<see cref="Ready.Messages"/>); its acknowledgements and votes
    /// wait for <see cref="FinishOldestPipelined"/>.
    /// </summary>
    public List<Message> TakePipelined()
    {
        if (_pipeline.Count > 0)
        {
            TakenBesideOthers++;
        }

        var rd = Node.GetReady();
        Persist(rd);
        _pipeline.Enqueue(rd);
        return [.. rd.Messages];
    }

    /// <summary>
    /// The oldest pipelined Ready is durable (and so every one before it, which it is): returns its
    /// <see cref="Ready.MessagesAfterPersist"/>, applies its committed entries and advances.
    /// </summary>
    public List<Message> FinishOldestPipelined()
    {
        var rd = _pipeline.Dequeue();
        Apply(rd);
        Node.Advance();
        return [.. rd.MessagesAfterPersist];
    }

    /// <summary>Applies the held Ready and advances.</summary>
    public void FinishHeld()
    {
        var rd = Held ?? throw new InvalidOperationException("No Ready is held.");
        Held = null;
        Apply(rd);
        Node.Advance();
    }

    public void Persist(Ready rd)
    {
        if (rd.Snapshot is { } snapshot)
        {
            Storage.ApplySnapshot(snapshot);
        }

        Storage.Append(rd.Entries.Span);
        if (rd.HardState is { } hs)
        {
            Storage.SetHardState(hs);
        }
    }

    public void Apply(Ready rd)
    {
        if (rd.Snapshot is { } snapshot)
        {
            AppliedIndex = snapshot.Index;
            Config = snapshot.ConfState;
        }

        foreach (var entry in rd.CommittedEntries.Span)
        {
            Applying?.Invoke(this, entry);
            Applied.Add(entry);
            AppliedIndex = entry.Index;
            if (entry.Type == EntryType.ConfChange)
            {
                var change = MessageCodec.DecodeConfChange(entry.Data.Span);
                Config = Node.ApplyConfChange(change);
                Storage.SetConfState(Config);
                ConfChangesApplied.Add((entry.Index, change, Config));
            }
        }

        ReadStates.AddRange(rd.ReadStates);
        Refused.AddRange(rd.RefusedProposals);
        SnapshotRequests += rd.PeersNeedingSnapshot.Count;
    }

    /// <summary>Forwarded proposals the leader refused, as reported in Readies.</summary>
    public List<RefusedProposal> Refused { get; } = [];

    /// <summary>How many times a Ready asked this node's host for a snapshot (see <see cref="Ready.PeersNeedingSnapshot"/>).</summary>
    public int SnapshotRequests { get; set; }

    /// <summary>
    /// Restarts from what was persisted: unstable state, progress and (unless
    /// <paramref name="keepApplied"/>) the in-memory state machine are lost; the state machine
    /// is then rebuilt from the last snapshot (also if it is older than that snapshot).
    /// <paramref name="storage"/> replaces the storage (what survived a crash).
    /// </summary>
    public void Restart(bool keepApplied = true, MemoryStorage? storage = null)
    {
        Storage = storage ?? Storage;
        Held = null;
        _pipeline.Clear();
        var depth = PipelineDepth;
        if (!keepApplied || AppliedIndex < Storage.Snapshot().Index)
        {
            // The state machine (and the configuration persisted with it) is rebuilt from the snapshot.
            AppliedIndex = Storage.Snapshot().Index;
            Config = Storage.Snapshot().ConfState;
            ReadStates.Clear();
        }

        // The configuration is persisted with the state machine: a restart that keeps the
        // application's state keeps the configuration it had applied, whatever disk it restarts on.
        Storage.SetConfState(Config);

        // Everything as before; only the application's applied index is new (RaftOptions is a record).
        var options = Options with { AppliedIndex = AppliedIndex };
        Node = new RawNode(options, Storage) { MaxOutstandingReadies = depth };
    }

    /// <summary>Entries of the whole log (storage then unstable), from the first available index.</summary>
    public List<Entry> LogEntries()
    {
        var log = Core.Log;
        var result = new List<Entry>();
        var first = log.FirstIndex();
        var last = log.LastIndex();
        if (first <= last && log.TrySlice(first, last + 1, ulong.MaxValue, out var entries))
        {
            result.AddRange(entries.Span.ToArray());
        }

        return result;
    }
}
