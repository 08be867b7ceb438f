using EmbeddedRaft.Mvcc.Index;
using EmbeddedRaft.Mvcc.Store;
using EmbeddedRaft.Storage;

namespace EmbeddedRaft.Mvcc.Watch;

/// <summary>
/// The store's watches (etcd's <c>watchableStore</c>): the writer hands it each revision's changes
/// once they may be shown (<see cref="Applied"/>, <see cref="Committed"/>); it stages them in the
/// buffers of the synced watchers of the changed keys, found through a <see cref="WatcherIndex"/>,
/// and moves a watcher whose buffer is full to the unsynced state instead of waiting or dropping.
/// A committed batch whose only synced watchers are a few range watchers with room for it is
/// staged as one span of the batch per watcher instead, with nothing done per change
/// (<see cref="TryNotifyBatchAsSpans"/>). Each watcher's consumer takes its buffer
/// (<see cref="Take"/>) and builds the events from the staged bytes on its own thread, picking its
/// own out of a span (<see cref="WatchBuffer"/>), and, while unsynced, reads the missed revisions
/// from history itself, then rejoins.
/// </summary>
/// <remarks>
/// <para>When a revision is shown (the "notified" revision): with <see cref="MvccDurability.Synced"/>
/// only after the batch holding it is committed (synced) to disk, so a watcher never sees a change
/// a crash could undo, and before the writer's task completes, so a watch created after a write
/// returned does not report it. With <see cref="MvccDurability.NoSync"/> (under Raft) as soon as the
/// write is applied and visible to reads, as etcd notifies on apply: there the Raft log, not this
/// store, makes it durable. Either way it is visible to reads before it is notified, which is what
/// lets an unsynced watcher find in history everything up to the notified revision.</para>
/// <para>Locking: one lock (<c>_gate</c>) guards the index, every watcher's mutable state and the
/// notified revision; it is never held across IO or a wait. The writer holds it once per revision
/// and wakes that revision's consumers as it lets go, in both modes (a committed batch's revisions
/// one after another: see <see cref="Committed"/>), except for a batch staged as spans: once for
/// the batch.</para>
/// </remarks>
internal sealed class WatchHub
{
    /// <summary>
    /// Pending batches one watcher's buffer may hold at once. A consumer that keeps up holds one or
    /// two (the batch being committed and the one before, not yet decoded); one that stopped reading
    /// while its buffer is not full would otherwise pin a whole batch's buffers (up to ~1.5 MB) for
    /// each of its events. Past the bound the writer builds that watcher's events itself, as before
    /// buffers held bytes, until its consumer takes them.
    /// </summary>
    internal const int MaxHeldBatchesPerWatcher = 4;

    /// <summary>
    /// An emptied buffer of at least this many changes' room is kept for the watcher's next events
    /// (a busy watcher's list, which would otherwise be allocated again at each response: for a
    /// prefix watcher of a 10,000-write batch, on the large object heap); smaller ones are let go, so
    /// a watcher that saw a few events holds nothing once idle.
    /// </summary>
    internal const int MinReusedBufferCapacity = 64;

    /// <summary>
    /// Events per response a consumer decodes from its taken buffer at most (whole revisions: a
    /// larger revision is a response alone). Bounds the events alive at once while a consumer works
    /// through a large buffer (see <see cref="WatchBuffer.TakeEvents"/>).
    /// </summary>
    internal const int MaxEventsPerResponse = 256;

    /// <summary>
    /// Synced range watchers a committed batch is handed to as one span each at most (see
    /// <see cref="TryNotifyBatchAsSpans"/>): each of their consumers reads every change of the batch
    /// to find its own, so with more of them the writer's per-change staging (one index stab per
    /// change, an event built once for the watchers that share it) costs the process less.
    /// </summary>
    internal const int MaxSpanWatchers = 4;

    private readonly object _gate = new();
    private readonly StoreState _state;
    private readonly WatchOptions _options;
    private readonly bool _notifyOnCommit;
    private readonly WatcherIndex _index = new();
    private readonly HashSet<Watcher> _progressWatchers = [];

    /// <summary>Every watcher not yet ended (so closing the store can end each, synced or not).</summary>
    private readonly HashSet<Watcher> _live = [];

    // Writer thread only (under _gate while notifying).
    private readonly List<WatcherGroup> _matched = [];
    private readonly List<Watcher> _taking = [];
    private readonly List<Watcher> _touched = [];
    private readonly List<Watcher> _toWake = [];
    private readonly List<(long Revision, int Changes)> _uncommitted = [];
    private readonly List<Watcher> _spanning = [];

    /// <summary>Writer thread only: the changes of <see cref="_uncommitted"/>'s revisions.</summary>
    private int _uncommittedChanges;

    private ITimer? _progressTimer;
    private long _notifiedRevision;
    private long _lastWatchId;
    private Exception? _closedReason;
    private long _fellBehindCount;
    private long _spanBatchCount;

    /// <summary>Writer thread (under the lock): events the writer built for one watcher because its buffer held <see cref="MaxHeldBatchesPerWatcher"/> batches (see <see cref="StageRevision"/>).</summary>
    private long _heldBoundEventCount;

    /// <summary>Periodic progress ticks so far (see <see cref="Take"/>: a take that turned out to hold no event for its watcher).</summary>
    private long _progressTicks;

    public WatchHub(StoreState state)
    {
        _state = state;
        _options = state.Options.Watch;
        _notifyOnCommit = state.Options.Durability == MvccDurability.Synced;
        _notifiedRevision = state.Revision;
    }

    /// <summary>The newest revision shown to watchers. Invariant: every revision at or below it is visible to reads.</summary>
    public long NotifiedRevision => Volatile.Read(ref _notifiedRevision);

    public StoreState State => _state;

    /// <summary>Times a watcher left the live path because its buffer was full (for tests and benchmarks).</summary>
    internal long FellBehindCount => Volatile.Read(ref _fellBehindCount);

    /// <summary>Committed batches staged as spans for at least one watcher (<see cref="TryNotifyBatchAsSpans"/>; for tests and benchmarks).</summary>
    internal long SpanBatchCount => Volatile.Read(ref _spanBatchCount);

    /// <summary>
    /// Events the writer built itself for a single watcher, on its own thread, because that watcher's
    /// buffer already held <see cref="MaxHeldBatchesPerWatcher"/> pending batches (its consumer then
    /// only hands them out: they are not decoded, nor, for a reusing watch, written into its reused
    /// instances). For tests and benchmarks.
    /// </summary>
    internal long HeldBoundEventCount => Volatile.Read(ref _heldBoundEventCount);

    /// <summary>Synced watchers (for tests).</summary>
    internal int SyncedCount
    {
        get
        {
            lock (_gate)
            {
                return _index.Count;
            }
        }
    }

    // ------------------------------------------------------------ writer side

    /// <summary>
    /// Writer thread, after a write transaction published <paramref name="revision"/> with
    /// <paramref name="changes"/> changes (in <paramref name="pending"/>): notifies now (no-sync) or
    /// at the batch's commit (synced). Only the revision is remembered until then: its changes
    /// are read from the pending batch when notified, and only if some watcher could want them.
    /// </summary>
    public void Applied(long revision, int changes, PendingBatch pending)
    {
        if (_notifyOnCommit)
        {
            _uncommitted.Add((revision, changes));
            _uncommittedChanges += changes;
        }
        else
        {
            // The revision's changes are the batch's last entries.
            int position = pending.Count - changes;
            Notify(revision, changes, pending, ref position);
        }
    }

    /// <summary>
    /// Writer thread, once the batch is durable, before its writers are answered and before the
    /// batch is swapped out (<paramref name="pending"/> still holds its changes): notifies its
    /// revisions in order.
    /// </summary>
    public void Committed(PendingBatch pending)
    {
        if (_uncommitted.Count > 0 && !TryNotifyBatchAsSpans(pending))
        {
            // One revision per hold of the lock, its consumers woken at once, so a live consumer builds
            // the first revisions' events beside the writer while it notifies the rest. Measured against
            // chunks of 256 changes per hold and wake (session 8's, docs/benchmarks.md "Watches, session
            // 9"): with the events built by the consumers, per revision cost the writer and the process
            // less CPU in every alternated pair.
            // The batch's entries are its revisions in order: each change is looked up where the last one
            // ended (PendingBatch.TryGet's position), not searched for.
            int position = -1;
            foreach (var (revision, changes) in _uncommitted)
            {
                Notify(revision, changes, pending, ref position);
            }
        }

        _uncommitted.Clear();
        _uncommittedChanges = 0;
    }

    /// <summary>
    /// Notifies the whole committed batch (<see cref="_uncommitted"/>) in one hold of the lock with
    /// nothing done per change, when every synced watcher is a range watcher (at most
    /// <see cref="MaxSpanWatchers"/>) with room for the batch: each gets one span of the batch's
    /// entries (from its start revision on) and one wake, and its consumer finds its events among
    /// them on its own thread (<see cref="WatchBuffer.TakeEvents"/>). False, with nothing changed,
    /// otherwise: the caller notifies revision by revision.
    /// </summary>
    /// <remarks>
    /// Why: staging a batch change by change kept the writer ~150–230 ns per event on a live prefix
    /// watcher's behalf (a hold of the lock, an index stab, a buffer append, often a wake per
    /// revision: docs/benchmarks.md, "Watches, session 11"), on the thread every write waits for.
    /// Room: a span counts as every change it covers (<see cref="WatchBuffer.Bound"/>, an upper
    /// bound of its events), so a watcher whose buffer could not take the whole batch within
    /// <see cref="WatchOptions.MaxBufferedEvents"/> is staged revision by revision as before (its
    /// consumer may take pieces meanwhile, or it falls behind where the first revision does not fit);
    /// and a buffer holding <see cref="MaxHeldBatchesPerWatcher"/> batches is never given another.
    /// The batch is durable when this runs, so showing all its revisions at once shows nothing a
    /// crash could undo; the notified revision moves to its last at the same time, so a take never
    /// reports a revision whose events its buffer does not hold yet.
    /// </remarks>
    private bool TryNotifyBatchAsSpans(PendingBatch pending)
    {
        long first = _uncommitted[0].Revision;
        var (last, lastChanges) = _uncommitted[^1];
        int total = _uncommittedChanges;
        lock (_gate)
        {
            if (_index.Count != _index.RangeCount || _index.RangeCount > MaxSpanWatchers)
            {
                return false;
            }

            _index.CollectRangeWatchers(_spanning);
            int limit = _options.MaxBufferedEvents;
            foreach (var watcher in _spanning)
            {
                var buffer = watcher.Buffer;
                if ((buffer?.Bound ?? 0) + total > limit || (buffer?.HeldBatches ?? 0) >= MaxHeldBatchesPerWatcher)
                {
                    _spanning.Clear();
                    return false;
                }
            }

            if (first <= _notifiedRevision)
            {
                throw new InvariantViolationException($"MVCC watch: revision {first} notified after {_notifiedRevision}.");
            }

            if (_spanning.Count > 0)
            {
                StageSpansUnsynchronized(pending, first, last, lastChanges, total);
                Volatile.Write(ref _spanBatchCount, _spanBatchCount + 1);
            }

            Volatile.Write(ref _notifiedRevision, last);
            WakeTouchedUnsynchronized();
        }

        return true;
    }

    /// <summary>Gives each watcher of <see cref="_spanning"/> its span of the committed batch (revisions <paramref name="first"/> to <paramref name="last"/>, <paramref name="total"/> changes) and queues its wake.</summary>
    private void StageSpansUnsynchronized(PendingBatch pending, long first, long last, int lastChanges, int total)
    {
        // The batch's revisions are its last `total` entries, in order (checked at both ends).
        int position = -1;
        if (!pending.TryGet(new Revision(first, 0), ref position, out _))
        {
            throw new InvariantViolationException($"MVCC watch: change {new Revision(first, 0)} is not in the pending batch.");
        }

        int batchStart = position - 1;
        int batchEnd = batchStart + total;
        if (batchEnd > pending.Count || pending.EntryAt(batchEnd - 1).Revision != new Revision(last, lastChanges - 1))
        {
            throw new InvariantViolationException($"MVCC watch: the pending batch's entries {batchStart}..{batchEnd - 1} are not revisions {first}..{last}.");
        }

        foreach (var watcher in _spanning)
        {
            long from = Math.Max(first, watcher.StartRevision);
            if (from > last)
            {
                continue;
            }

            int start = batchStart;
            for (int i = 0; i < _uncommitted.Count && _uncommitted[i].Revision < from; i++)
            {
                start += _uncommitted[i].Changes;
            }

            var buffer = watcher.Buffer;
            if (buffer is null)
            {
                buffer = watcher.SpareBuffer ?? new WatchBuffer();
                watcher.SpareBuffer = null;
                watcher.Buffer = buffer;
            }

            if (!buffer.Holds(pending))
            {
                buffer.Hold(pending);
            }

            buffer.AddSpan(pending, start, batchEnd, from);
            if (!watcher.WakeQueued)
            {
                watcher.WakeQueued = true;
                _toWake.Add(watcher);
            }
        }

        _spanning.Clear();
    }

    /// <summary>Writer thread: the store faulted; revisions not yet notified never will be, and every watch ends with the fault after its buffer.</summary>
    public void Faulted(Exception failure)
    {
        _uncommitted.Clear();
        _uncommittedChanges = 0;
        Close(new StorageFaultedException(_state.Path, failure));
    }

    /// <summary>
    /// Writer thread: the store now holds a restored history whose current revision is
    /// <paramref name="revision"/> (nothing pending). As etcd's restore moves every watcher to the
    /// unsynced group, every synced watcher leaves the index with its next revision kept: its
    /// consumer catches up from the new history (everything it was already given stays given) or,
    /// when that revision is at or below the new compaction point, its catch-up ends it with the
    /// compacted error. The notified revision becomes the new one.
    /// </summary>
    public void Restored(long revision)
    {
        lock (_gate)
        {
            if (_closedReason is not null)
            {
                return;
            }

            foreach (var watcher in _live)
            {
                if (watcher.State == WatcherState.Synced)
                {
                    _index.Remove(watcher);
                    watcher.Next = Math.Max(_notifiedRevision + 1, watcher.StartRevision);
                    watcher.State = WatcherState.Unsynced;
                }

                watcher.Wake();
            }

            Volatile.Write(ref _notifiedRevision, revision);
        }
    }

    /// <summary>Ends every watch with <paramref name="reason"/> after what it has buffered (the store is closing or faulted); later watches end at once.</summary>
    public void Close(Exception reason)
    {
        ITimer? timer;
        lock (_gate)
        {
            if (_closedReason is not null)
            {
                return;
            }

            _closedReason = reason;
            timer = _progressTimer;
            _progressTimer = null;
            foreach (var watcher in AllWatchersUnsynchronized())
            {
                EndUnsynchronized(watcher, reason);
            }
        }

        timer?.Dispose();
    }

    /// <summary>Notifies one revision; <paramref name="position"/>: where its first change is expected in <paramref name="pending"/> (see <see cref="PendingBatch.TryGet(Revision, ref int, out PendingBatch.Entry)"/>), then the position after its last change read.</summary>
    private void Notify(long revision, int changes, PendingBatch pending, ref int position)
    {
        lock (_gate)
        {
            NotifyUnsynchronized(revision, changes, pending, ref position);
            WakeTouchedUnsynchronized();
        }
    }

    /// <summary>Appends one revision's events to its synced watchers' buffers (whole, or not at all and the watcher leaves the live path) and publishes it as notified; the consumers are woken by the caller (<see cref="WakeTouchedUnsynchronized"/>).</summary>
    private void NotifyUnsynchronized(long revision, int changes, PendingBatch pending, ref int position)
    {
        if (revision <= _notifiedRevision)
        {
            throw new InvariantViolationException($"MVCC watch: revision {revision} notified after {_notifiedRevision}.");
        }

        if (_index.Count > 0)
        {
            StageRevision(revision, changes, pending, ref position);
        }

        Volatile.Write(ref _notifiedRevision, revision);
    }

    /// <summary>Wakes the consumer of every watcher given events (or moved to the unsynced state) since the last call.</summary>
    private void WakeTouchedUnsynchronized()
    {
        foreach (var watcher in _toWake)
        {
            watcher.WakeQueued = false;
            watcher.Wake();
        }

        _toWake.Clear();
    }

    /// <summary>
    /// Stages one revision's changes in the buffers of the synced watchers that take them. The
    /// writer adds no object per change: a watcher's buffer gets the change's stored bytes (a slice
    /// of <paramref name="pending"/>, which the buffer holds) and its consumer decodes the event. The
    /// writer builds the event itself only for a change several watchers take (once, shared:
    /// decoding it once per consumer would cost more in all) and for a watcher holding
    /// <see cref="MaxHeldBatchesPerWatcher"/> batches already.
    /// </summary>
    private void StageRevision(long revision, int changes, PendingBatch pending, ref int position)
    {
        for (int sub = 0; sub < changes; sub++)
        {
            var at = new Revision(revision, sub);
            if (!pending.TryGet(at, ref position, out var change))
            {
                throw new InvariantViolationException($"MVCC watch: change {at} is not in the pending batch.");
            }

            var stored = change.StoredValue.Span;
            if (!StoredValue.TryDecode(stored, at.Main, change.Tombstone, out var decoded))
            {
                throw StoredValue.Malformed(_state.Path, at, change.Tombstone, stored);
            }

            _matched.Clear();
            _index.Find(StoredValue.KeyOf(stored, decoded), _matched);
            foreach (var group in _matched)
            {
                foreach (var watcher in group.Members)
                {
                    if (revision >= watcher.StartRevision && watcher.Accepts(change.Tombstone))
                    {
                        _taking.Add(watcher);
                    }
                }
            }

            // One event object for every watcher of a shared change (it is immutable).
            WatchEvent? shared = _taking.Count > 1 ? HistoryReader.ToEvent(revision, change.Tombstone, stored, decoded) : null;
            foreach (var watcher in _taking)
            {
                var buffer = watcher.Buffer;
                if (buffer is null)
                {
                    buffer = watcher.SpareBuffer ?? new WatchBuffer();
                    watcher.SpareBuffer = null;
                    watcher.Buffer = buffer;
                }

                if (watcher.StagedFrom < 0)
                {
                    watcher.StagedFrom = buffer.Count;
                    _touched.Add(watcher);
                }

                if (shared is null && (buffer.Holds(pending) || buffer.HeldBatches < MaxHeldBatchesPerWatcher))
                {
                    if (!buffer.Holds(pending))
                    {
                        buffer.Hold(pending);
                    }

                    buffer.Add(new BufferedChange(revision, change.Tombstone, change.StoredValue));
                }
                else if (shared is not null)
                {
                    buffer.Add(new BufferedChange(shared));
                }
                else
                {
                    buffer.Add(new BufferedChange(HistoryReader.ToEvent(revision, change.Tombstone, stored, decoded)));
                    _heldBoundEventCount++;
                }
            }

            _taking.Clear();
        }

        int limit = _options.MaxBufferedEvents;
        foreach (var watcher in _touched)
        {
            var buffer = watcher.Buffer!;
            if (buffer.Bound > limit && watcher.StagedFrom > 0)
            {
                // Full: never wait, never drop. The revision comes out of the buffer whole and the
                // watcher leaves the live path; its consumer reads it from history after the buffer.
                buffer.RemoveFrom(watcher.StagedFrom);
                _index.Remove(watcher);
                watcher.State = WatcherState.Unsynced;
                watcher.Next = revision;
                _fellBehindCount++;
            }

            watcher.StagedFrom = -1;
            if (!watcher.WakeQueued)
            {
                watcher.WakeQueued = true;
                _toWake.Add(watcher);
            }
        }

        _touched.Clear();
    }

    // ------------------------------------------------------------ consumer side

    /// <summary>Creates a watcher for <paramref name="request"/> (validated): synced from the next revision, or unsynced from a past start revision.</summary>
    public Watcher Register(WatchRequest request)
    {
        bool startTimer = false;
        Watcher watcher;
        lock (_gate)
        {
            watcher = new Watcher(++_lastWatchId, request);
            long notified = _notifiedRevision;
            if (_closedReason is not null)
            {
                watcher.StartRevision = request.StartRevision == 0 ? notified + 1 : request.StartRevision;
                EndUnsynchronized(watcher, _closedReason);
                return watcher;
            }

            _live.Add(watcher);
            if (request.StartRevision == 0 || request.StartRevision > notified)
            {
                watcher.State = WatcherState.Synced;
                watcher.StartRevision = request.StartRevision == 0 ? notified + 1 : request.StartRevision;
                _index.Add(watcher);
            }
            else
            {
                watcher.State = WatcherState.Unsynced;
                watcher.StartRevision = request.StartRevision;
                watcher.Next = request.StartRevision;
            }

            if (watcher.ProgressNotify)
            {
                _progressWatchers.Add(watcher);
                if (_progressTimer is null)
                {
                    startTimer = true;
                }
            }
        }

        if (startTimer)
        {
            StartProgressTimer();
        }

        return watcher;
    }

    /// <summary>The consumer left: the watcher leaves the index and releases its buffer.</summary>
    public void Unregister(Watcher watcher)
    {
        lock (_gate)
        {
            EndUnsynchronized(watcher, reason: null);
            watcher.Buffer?.Empty();
            watcher.Buffer = null;
            watcher.SpareBuffer = null;
        }
    }

    /// <summary>Asks for a progress notification: the watch's next response says which revision it has delivered every event up to.</summary>
    public void RequestProgress(Watcher watcher)
    {
        lock (_gate)
        {
            if (watcher.State != WatcherState.Ended)
            {
                watcher.ProgressRequested = true;
                watcher.Wake();
            }
        }
    }

    /// <summary>
    /// What a consumer does next; decided under the lock. <paramref name="emptied"/>: a buffer the
    /// consumer took and has emptied (<see cref="WatchBuffer.TakeEvents"/>), or null. When large
    /// enough (<see cref="MinReusedBufferCapacity"/>) it becomes the watcher's spare for the writer's
    /// next events and <paramref name="emptied"/> is set to null; while the watcher still has a spare
    /// the consumer keeps it (left as is) and offers it again at its next take; a small one is let go.
    /// </summary>
    /// <remarks>
    /// Why the consumer keeps one: a busy watcher needs two buffers, the one its consumer decodes and
    /// the one the writer fills. A consumer that finds nothing to take hands its emptied buffer over
    /// while the spare from its previous take is still unused; if that one were dropped, the writer
    /// would fill the spare, the consumer would take it, and the writer's next revision would need a
    /// new buffer, grown again from empty to a batch's size (for a prefix watcher of 10,000-write
    /// batches, several arrays on the large object heap, once per batch: measured in docs/benchmarks.md,
    /// "Watches, session 10").
    /// </remarks>
    public TakeResult Take(Watcher watcher, ref WatchBuffer? emptied, bool lastTookNothing = false)
    {
        lock (_gate)
        {
            if (lastTookNothing)
            {
                UndoDeliveredUnsynchronized(watcher);
            }

            if (emptied is not null)
            {
                if (emptied.Count != 0 || emptied.HeldBatches != 0)
                {
                    throw new InvariantViolationException($"MVCC watch: watcher {watcher.Id}'s consumer handed back a buffer not emptied.");
                }

                if (emptied.Capacity < MinReusedBufferCapacity || watcher.State == WatcherState.Ended)
                {
                    emptied = null;
                }
                else if (watcher.SpareBuffer is null)
                {
                    watcher.SpareBuffer = emptied;
                    emptied = null;
                }
            }

            while (true)
            {
                if (watcher.Buffer is { Count: > 0 } buffer)
                {
                    // Its spans may turn out to hold no event for the watcher: what to put back then (UndoDeliveredUnsynchronized).
                    bool progressRequested = watcher.ProgressRequested;
                    watcher.DeliveredBeforeTake = watcher.DeliveredSinceTick;
                    watcher.TicksAtTake = _progressTicks;
                    watcher.Buffer = null;
                    watcher.ProgressRequested = false;
                    watcher.DeliveredSinceTick = true;
                    return TakeResult.Respond(buffer, DeliveredThroughUnsynchronized(watcher), progressRequested);
                }

                if (watcher.State == WatcherState.Ended)
                {
                    return TakeResult.End(watcher.EndReason);
                }

                if (watcher.State == WatcherState.Unsynced)
                {
                    if (watcher.Next > _notifiedRevision)
                    {
                        // Caught up: everything through the notified revision was read from history,
                        // and every later revision is notified after this, under this lock.
                        watcher.State = WatcherState.Synced;
                        watcher.StartRevision = Math.Max(watcher.StartRevision, watcher.Next);
                        _index.Add(watcher);
                        continue;
                    }

                    return TakeResult.CatchUp(watcher.Next, _notifiedRevision);
                }

                // Synced with nothing buffered. (An unsynced watcher answers a progress request with
                // its catch-up responses and, once caught up, here: answering it before catching up
                // would report the same old revision to a consumer that keeps asking.)
                if (watcher.ProgressRequested)
                {
                    watcher.ProgressRequested = false;
                    watcher.DeliveredSinceTick = true;
                    return TakeResult.Respond(null, DeliveredThroughUnsynchronized(watcher), answersProgress: true);
                }

                // Deterministic mode: continuations run where they ask to (an await on the scheduler
                // is queued to it); asynchronous ones would take the thread pool for the consumer's
                // WaitAsync(cancellationToken) and come back to the scheduler at a time it does not decide.
                var waiter = new TaskCompletionSource<bool>(_state.Options.Scheduler is null ? TaskCreationOptions.RunContinuationsAsynchronously : TaskCreationOptions.None);
                watcher.Waiter = waiter;
                return TakeResult.Wait(waiter);
            }
        }
    }

    /// <summary>
    /// The consumer's last take (of a buffer) held no event for its watcher, and it answered no
    /// progress request (only spans, none of whose changes the watcher takes): nothing was delivered,
    /// so the periodic progress notification it counted as delivered is put back as it was: the flag
    /// as before the take, or, when a tick ran since (and took the take for a delivery), the progress
    /// notification that tick would have asked for.
    /// </summary>
    private void UndoDeliveredUnsynchronized(Watcher watcher)
    {
        if (watcher.TicksAtTake == _progressTicks)
        {
            watcher.DeliveredSinceTick = watcher.DeliveredBeforeTake;
        }
        else if (!watcher.DeliveredBeforeTake && watcher.ProgressNotify && watcher.State == WatcherState.Synced)
        {
            watcher.ProgressRequested = true;
        }
    }

    /// <summary>The consumer read history through <paramref name="coveredRevision"/> (and delivers a response when <paramref name="delivered"/>); nothing changes when the watch ended meanwhile.</summary>
    public void CaughtUpThrough(Watcher watcher, long coveredRevision, bool delivered)
    {
        lock (_gate)
        {
            if (watcher.State == WatcherState.Unsynced)
            {
                if (coveredRevision + 1 < watcher.Next)
                {
                    throw new InvariantViolationException($"MVCC watch: watcher {watcher.Id} went back from {watcher.Next} to {coveredRevision + 1}.");
                }

                watcher.Next = coveredRevision + 1;
                if (delivered)
                {
                    // The catch-up response carries the revision a progress notification would.
                    watcher.DeliveredSinceTick = true;
                    watcher.ProgressRequested = false;
                }
            }
        }
    }

    /// <summary>The watch cannot go on (its history was compacted): it ends with <paramref name="reason"/>.</summary>
    public void End(Watcher watcher, Exception reason)
    {
        lock (_gate)
        {
            EndUnsynchronized(watcher, reason);
        }
    }

    /// <summary>The revision through which every event of the watcher has been taken once its buffer is.</summary>
    private long DeliveredThroughUnsynchronized(Watcher watcher) => watcher.State switch
    {
        WatcherState.Synced => Math.Max(_notifiedRevision, watcher.StartRevision - 1),
        _ => watcher.Next - 1,
    };

    private void EndUnsynchronized(Watcher watcher, Exception? reason)
    {
        if (watcher.State == WatcherState.Ended)
        {
            return;
        }

        if (watcher.State == WatcherState.Synced && watcher.Group is not null)
        {
            _index.Remove(watcher);
        }

        // The promise of a response's revision for the buffered events of an ended watcher.
        if (watcher.State == WatcherState.Synced)
        {
            watcher.Next = Math.Max(_notifiedRevision, watcher.StartRevision - 1) + 1;
        }

        watcher.State = WatcherState.Ended;
        watcher.EndReason = reason;
        _progressWatchers.Remove(watcher);
        _live.Remove(watcher);
        watcher.Wake();
    }

    private List<Watcher> AllWatchersUnsynchronized() => [.. _live];

    private void StartProgressTimer()
    {
        // Deterministic mode: the tick runs as a task on the scheduler, not inside the clock's callback.
        var timer = _state.Options.Scheduler is null
            ? _options.TimeProvider.CreateTimer(static hub => ((WatchHub)hub!).ProgressTick(), this, _options.ProgressInterval, _options.ProgressInterval)
            : _options.TimeProvider.CreateTimer(static hub => ((WatchHub)hub!).PostProgressTick(), this, _options.ProgressInterval, _options.ProgressInterval);
        lock (_gate)
        {
            if (_progressTimer is null && _closedReason is null)
            {
                _progressTimer = timer;
                return;
            }
        }

        timer.Dispose();
    }

    private void PostProgressTick() =>
        Task.Factory.StartNew(static hub => ((WatchHub)hub!).ProgressTick(), this, CancellationToken.None, TaskCreationOptions.DenyChildAttach, _state.Options.Scheduler!);

    /// <summary>A progress interval passed: each progress-notify watch that delivered nothing since the last tick gets a progress notification.</summary>
    private void ProgressTick()
    {
        lock (_gate)
        {
            _progressTicks++;
            foreach (var watcher in _progressWatchers)
            {
                if (!watcher.DeliveredSinceTick && watcher.State == WatcherState.Synced)
                {
                    watcher.ProgressRequested = true;
                    watcher.Wake();
                }

                watcher.DeliveredSinceTick = false;
            }
        }
    }
}
