using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using EmbeddedRaft.Mvcc.Index;
using EmbeddedRaft.Mvcc.Store;

namespace EmbeddedRaft.Mvcc.Watch;

/// <summary>
/// A watcher's live changes its consumer has not taken yet: filled by the writer (under the hub's
/// lock), then taken whole by the consumer, which decodes the events on its own thread, a bounded
/// piece per response (<see cref="TakeEvents"/>), so building a watch's event objects costs the
/// writer nothing. An item is one change, or a span of a committed batch's entries
/// (<see cref="AddSpan"/>) among which the consumer finds the watcher's changes itself, so staging a
/// whole batch costs the writer one item.
/// </summary>
/// <remarks>
/// <para>Bytes: a staged change slices the stored value in the pending batch that holds its revision,
/// which the buffer <see cref="PendingBatch.Hold"/>s (once per batch, from the writer's thread, before
/// the batch is swapped out) until its events are decoded (for a reusing watch,
/// <see cref="WatchRequest.ReuseEvents"/>, whose events slice these bytes instead of copying them:
/// until its consumer asks for the response after the last one decoded from it), so the writer does
/// not write that batch's buffers again meanwhile. Batches come in revision order: only the newest held one can be the
/// batch of the next change. A consumer that stops reading partway through a taken buffer keeps its
/// batches held (up to <see cref="WatchHub.MaxHeldBatchesPerWatcher"/>) besides those of the buffer
/// the writer fills meanwhile (up to as many): the bound per watcher is twice that.</para>
/// <para>Thread-safety: the writer fills it under the hub's lock while it is the watcher's
/// <see cref="Watcher.Buffer"/>; once taken it belongs to the consumer alone.</para>
/// </remarks>
internal sealed class WatchBuffer
{
    private readonly List<BufferedChange> _changes = [];
    private readonly List<PendingBatch> _held = new(2);

    /// <summary>Consumer only: the items before this index are decoded (<see cref="TakeEvents"/>).</summary>
    private int _decoded;

    /// <summary>Consumer only: while the item at <see cref="_decoded"/> is a span read in pieces, the batch position of its next entry (0 before it is started).</summary>
    private int _spanAt;

    /// <summary>The changes the items cover (<see cref="BufferedChange.Changes"/>): an upper bound of their events.</summary>
    private int _bound;

    /// <summary>Items staged (while its consumer decodes it in pieces, the decoded ones too: 0 once emptied).</summary>
    public int Count => _changes.Count;

    /// <summary>The changes the staged items cover: every staged change counts one, a span every change of it (some of which its consumer may leave out). What <see cref="WatchOptions.MaxBufferedEvents"/> bounds.</summary>
    public int Bound => _bound;

    /// <summary>Changes the list has room for without growing (for keeping a busy watcher's buffer for reuse).</summary>
    public int Capacity => _changes.Capacity;

    /// <summary>Pending batches held.</summary>
    public int HeldBatches => _held.Count;

    /// <summary>True when <paramref name="batch"/> is held already (it is the newest held batch).</summary>
    public bool Holds(PendingBatch batch) => _held.Count > 0 && ReferenceEquals(_held[^1], batch);

    /// <summary>Writer thread, before <paramref name="batch"/> is swapped out: holds it until the events are decoded.</summary>
    public void Hold(PendingBatch batch)
    {
        batch.Hold();
        _held.Add(batch);
    }

    public void Add(in BufferedChange change)
    {
        _changes.Add(change);
        _bound += change.Changes;
    }

    /// <summary>
    /// Writer thread: stages the entries [<paramref name="start"/>, <paramref name="end"/>) of
    /// <paramref name="batch"/> (whole revisions, the first <paramref name="firstMain"/>), which must be
    /// the newest batch held, for the consumer to read and filter (see <see cref="TakeEvents"/>).
    /// </summary>
    public void AddSpan(PendingBatch batch, int start, int end, long firstMain)
    {
        if (!Holds(batch))
        {
            throw new InvariantViolationException("MVCC watch: a span staged of a batch the buffer does not hold.");
        }

        Add(BufferedChange.Span(firstMain, _held.Count - 1, start, end));
    }

    /// <summary>Removes the items from <paramref name="index"/> on (a revision that did not fit); a batch stays held until the buffer is emptied.</summary>
    public void RemoveFrom(int index)
    {
        for (int i = index; i < _changes.Count; i++)
        {
            _bound -= _changes[i].Changes;
        }

        _changes.RemoveRange(index, _changes.Count - index);
    }

    /// <summary>True once every staged change was decoded (<see cref="TakeEvents"/>), or the buffer is empty: what is left is to <see cref="Empty"/> it.</summary>
    public bool Drained => _decoded >= _changes.Count;

    /// <summary>
    /// Consumer thread: appends the next events of <paramref name="watcher"/>, in order, to
    /// <paramref name="events"/>, decoded from the held batches' bytes (or the built ones): the whole
    /// revisions that fit in <paramref name="maxEvents"/>, or the next revision alone when it is larger;
    /// a span's entries outside the watched range or filtered out are passed over (and so are the
    /// revisions of a span that end up with no event for the watcher, until the next revision that has
    /// one or the end). Returns the main revision through which every item is read. Once the last
    /// item is read the buffer is <see cref="Drained"/> (possibly with no event appended, when its
    /// spans held none for the watcher): the caller <see cref="Empty"/>s it, which releases the
    /// batches (a reusing consumer only once the events it handed out may no longer be read: their
    /// keys and values slice those batches). <paramref name="reused"/> null: each event is a new
    /// object with its own copy of the key and value; otherwise (<see cref="WatchRequest.ReuseEvents"/>)
    /// the events are written into its instances and their keys and values slice the held batches'
    /// bytes: nothing is allocated per event.
    /// </summary>
    /// <remarks>
    /// <para>Why in pieces: a prefix watcher's buffer holds up to a whole committed batch (10,000 changes
    /// and more), and while its consumer builds their events every collection that runs finds them
    /// alive and promotes them; decoded a bounded piece per response, at most that piece is alive
    /// (measured in docs/benchmarks.md, "Watches, session 10").</para>
    /// <para>Compiled optimized at once (<see cref="MethodImplOptions.AggressiveOptimization"/>, as
    /// <see cref="TakeSpanEvents"/> and <see cref="TakeRevisionEvents"/>): these loops are the consumer's
    /// per-event work, called once per response, so under tiered compilation a new watch's first
    /// hundreds of thousands of events ran through unoptimized code with every small helper (decode,
    /// range check, event overwrite) a call of its own: in <c>perf</c> the consumer cost ~4x its later
    /// CPU per event for the first seconds of a run (docs/benchmarks.md, "Watches, session 13").</para>
    /// </remarks>
    /// <exception cref="InvariantViolationException">A staged value no longer decodes (the writer checked it when it staged it; the buffer is emptied), or nothing is left to decode.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public long TakeEvents(int maxEvents, List<WatchEvent> events, ReusedEvents? reused, Watcher watcher)
    {
        var changes = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_changes);
        if (_decoded >= changes.Length)
        {
            throw new InvariantViolationException("MVCC watch: events taken from an empty buffer.");
        }

        int limit = Math.Max(1, maxEvents);
        int taken = 0;
        long through = 0;
        try
        {
            while (_decoded < changes.Length)
            {
                ref readonly var change = ref changes[_decoded];
                if (change.IsSpan)
                {
                    if (!TakeSpanEvents(change, limit, ref taken, ref through, events, reused, watcher))
                    {
                        return through;
                    }

                    _decoded++;
                    _spanAt = 0;
                    continue;
                }

                // A staged revision: its changes are consecutive items (a revision is staged whole or spanned whole).
                int end = _decoded + 1;
                while (end < changes.Length && !changes[end].IsSpan && changes[end].Main == change.Main)
                {
                    end++;
                }

                int count = end - _decoded;
                if (taken > 0 && taken + count > limit)
                {
                    return through;
                }

                events.EnsureCapacity(events.Count + count);
                for (int i = _decoded; i < end; i++)
                {
                    events.Add(changes[i].Built ?? (reused is null ? Decode(changes[i]) : DecodeInto(changes[i], reused.Next())));
                }

                taken += count;
                through = change.Main;
                _decoded = end;
            }
        }
        catch
        {
            // The batches are let go; the consumer's enumeration ends with the failure.
            Empty();
            throw;
        }

        return through;
    }

    /// <summary>Drops the changes, decoded or not, and releases the held batches: once <see cref="Drained"/> (see <see cref="TakeEvents"/>), or when the watch ended without its consumer taking them.</summary>
    public void Empty()
    {
        _changes.Clear();
        _decoded = 0;
        _spanAt = 0;
        _bound = 0;
        foreach (var batch in _held)
        {
            batch.Release();
        }

        _held.Clear();
    }

    /// <summary>
    /// The span's next revisions' events for <paramref name="watcher"/>, from <see cref="_spanAt"/>:
    /// false when the piece is full before the span's end (<see cref="_spanAt"/> is then the first
    /// revision left, which has an event), true once every entry of the span was read.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private bool TakeSpanEvents(in BufferedChange span, int limit, ref int taken, ref long through, List<WatchEvent> events, ReusedEvents? reused, Watcher watcher)
    {
        var batch = _held[span.HeldBatch];
        int at = Math.Max(_spanAt, span.SpanStart);
        if (at >= span.SpanEnd)
        {
            _spanAt = at;
            return true;
        }

        var entry = batch.EntryAt(at);
        while (true)
        {
            long main = entry.Revision.Main;
            if (main < span.Main || main <= through)
            {
                ThrowSpanOutOfOrder(entry.Revision, Math.Max(through, span.Main - 1));
            }

            // The revision's entries are [at, next); `following` is the entry at next, if any (read once).
            int next = at + 1;
            PendingBatch.Entry following = default;
            while (next < span.SpanEnd)
            {
                following = batch.EntryAt(next);
                if (following.Revision.Main != main)
                {
                    break;
                }

                next++;
            }

            if (next == at + 1)
            {
                // One change (a put, a delete of one key): one decode.
                if (Takes(entry, watcher, out var decoded))
                {
                    if (taken > 0 && taken + 1 > limit)
                    {
                        _spanAt = at;
                        return false;
                    }

                    events.Add(ToEvent(entry, decoded, reused));
                    taken++;
                }
            }
            else if (!TakeRevisionEvents(batch, at, next, limit, ref taken, events, reused, watcher))
            {
                _spanAt = at;
                return false;
            }

            through = main;
            at = next;
            if (at >= span.SpanEnd)
            {
                _spanAt = at;
                return true;
            }

            entry = following;
        }
    }

    /// <summary>The events of one revision of several changes, entries [<paramref name="at"/>, <paramref name="next"/>) of <paramref name="batch"/>, whole: false, with none taken, when they do not fit in the piece.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool TakeRevisionEvents(PendingBatch batch, int at, int next, int limit, ref int taken, List<WatchEvent> events, ReusedEvents? reused, Watcher watcher)
    {
        // Counted before any is taken: a revision is never split.
        int matches = 0;
        for (int p = at; p < next; p++)
        {
            if (Takes(batch.EntryAt(p), watcher, out _))
            {
                matches++;
            }
        }

        if (matches > 0 && taken > 0 && taken + matches > limit)
        {
            return false;
        }

        for (int p = at; p < next && matches > 0; p++)
        {
            var entry = batch.EntryAt(p);
            if (Takes(entry, watcher, out var decoded))
            {
                events.Add(ToEvent(entry, decoded, reused));
            }
        }

        taken += matches;
        return true;
    }

    /// <summary>The event of a span's entry: a new one with its own copy of the key and value, or (reusing) written into the next reused instance, slicing the held batch.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static WatchEvent ToEvent(in PendingBatch.Entry entry, in StoredValue.Decoded decoded, ReusedEvents? reused) =>
        reused is null
            ? HistoryReader.ToEvent(entry.Revision.Main, entry.Tombstone, entry.StoredValue.Span, decoded)
            : HistoryReader.OverwriteEvent(reused.Next(), entry.Revision.Main, entry.Tombstone, entry.StoredValue, decoded);

    /// <summary>True when <paramref name="watcher"/> takes the change of <paramref name="entry"/> (its key in range, its kind not filtered out).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Takes(in PendingBatch.Entry entry, Watcher watcher, out StoredValue.Decoded decoded)
    {
        var stored = entry.StoredValue.Span;
        if (!StoredValue.TryDecode(stored, entry.Revision.Main, entry.Tombstone, out decoded))
        {
            ThrowHeldValueDoesNotDecode(entry.Revision);
        }

        return watcher.Accepts(entry.Tombstone) && watcher.Matches(StoredValue.KeyOf(stored, decoded));
    }

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowHeldValueDoesNotDecode(Revision revision) =>
        throw new InvariantViolationException($"MVCC watch: the stored value of revision {revision} in a held batch does not decode (its pending batch was written again while held).");

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static WatchEvent Decode(in BufferedChange change) =>
        HistoryReader.ToEvent(change.Main, change.Tombstone, change.Stored.Span, DecodeStored(change));

    /// <summary>The event of a staged change written into <paramref name="target"/>, its key and value slices of the held batch (no copy).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static WatchEvent DecodeInto(in BufferedChange change, WatchEvent target) =>
        HistoryReader.OverwriteEvent(target, change.Main, change.Tombstone, change.Stored, DecodeStored(change));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static StoredValue.Decoded DecodeStored(in BufferedChange change)
    {
        if (!StoredValue.TryDecode(change.Stored.Span, change.Main, change.Tombstone, out var decoded))
        {
            ThrowBufferedValueDoesNotDecode(change.Main);
        }

        return decoded;
    }

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowBufferedValueDoesNotDecode(long main) =>
        throw new InvariantViolationException($"MVCC watch: the buffered stored value of revision {main} no longer decodes (its pending batch was written again while held).");

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowSpanOutOfOrder(Revision revision, long after) =>
        throw new InvariantViolationException($"MVCC watch: a span's entry of revision {revision} read after revision {after}.");
}
