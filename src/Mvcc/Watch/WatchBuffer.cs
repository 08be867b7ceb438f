using EmbeddedRaft.Mvcc.Store;

namespace EmbeddedRaft.Mvcc.Watch;

/// <summary>
/// A watcher's live changes its consumer has not taken yet: filled by the writer (under the hub's
/// lock), then taken whole by the consumer, which decodes the events on its own thread, a bounded
/// piece per response (<see cref="TakeEvents"/>), so building a watch's event objects costs the
/// writer nothing.
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

    /// <summary>Consumer only: the changes before this index are decoded (<see cref="TakeEvents"/>).</summary>
    private int _decoded;

    /// <summary>Changes staged (while its consumer decodes it in pieces, the decoded ones too: 0 once emptied).</summary>
    public int Count => _changes.Count;

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

    public void Add(in BufferedChange change) => _changes.Add(change);

    /// <summary>Removes the changes from <paramref name="index"/> on (a revision that did not fit); a batch stays held until the buffer is emptied.</summary>
    public void RemoveFrom(int index) => _changes.RemoveRange(index, _changes.Count - index);

    /// <summary>True once every staged change was decoded (<see cref="TakeEvents"/>), or the buffer is empty: what is left is to <see cref="Empty"/> it.</summary>
    public bool Drained => _decoded >= _changes.Count;

    /// <summary>
    /// Consumer thread: appends the next events, in order, to <paramref name="events"/>, decoded from
    /// the held batches' bytes (or the built ones): the whole revisions that fit in
    /// <paramref name="maxEvents"/>, or the next revision alone when it is larger; returns the main
    /// revision of the last one. Once the last change is decoded the buffer is <see cref="Drained"/>:
    /// the caller <see cref="Empty"/>s it, which releases the batches (a reusing consumer only once
    /// the events it handed out may no longer be read: their keys and values slice those batches).
    /// <paramref name="reused"/> null: each event is a new object with its own copy of the key and
    /// value; otherwise (<see cref="WatchRequest.ReuseEvents"/>) the events are written into its
    /// instances and their keys and values slice the held batches' bytes: nothing is allocated per event.
    /// </summary>
    /// <remarks>
    /// Why in pieces: a prefix watcher's buffer holds up to a whole committed batch (10,000 changes
    /// and more), and while its consumer builds their events every collection that runs finds them
    /// alive and promotes them; decoded a bounded piece per response, at most that piece is alive
    /// (measured in docs/benchmarks.md, "Watches, session 10").
    /// </remarks>
    /// <exception cref="InvariantViolationException">A staged value no longer decodes (the writer checked it when it staged it; the buffer is emptied), or nothing is left to decode.</exception>
    public long TakeEvents(int maxEvents, List<WatchEvent> events, ReusedEvents? reused)
    {
        var changes = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_changes);
        int from = _decoded;
        if (from >= changes.Length)
        {
            throw new InvariantViolationException("MVCC watch: events taken from an empty buffer.");
        }

        // Whole revisions only: the piece ends at the last revision boundary within maxEvents changes,
        // or, when its first revision alone is larger, after that revision.
        int end = Math.Min(changes.Length, from + Math.Max(1, maxEvents));
        if (end < changes.Length && changes[end].Main == changes[end - 1].Main)
        {
            int cut = end - 1;
            while (cut > from && changes[cut - 1].Main == changes[end - 1].Main)
            {
                cut--;
            }

            if (cut > from)
            {
                end = cut;
            }
            else
            {
                while (end < changes.Length && changes[end].Main == changes[end - 1].Main)
                {
                    end++;
                }
            }
        }

        try
        {
            events.EnsureCapacity(events.Count + (end - from));
            for (int i = from; i < end; i++)
            {
                ref readonly var change = ref changes[i];
                events.Add(change.Built ?? (reused is null ? Decode(change) : DecodeInto(change, reused.Next())));
            }
        }
        catch
        {
            // The batches are let go; the consumer's enumeration ends with the failure.
            Empty();
            throw;
        }

        _decoded = end;
        return changes[end - 1].Main;
    }

    /// <summary>Drops the changes, decoded or not, and releases the held batches: once <see cref="Drained"/> (see <see cref="TakeEvents"/>), or when the watch ended without its consumer taking them.</summary>
    public void Empty()
    {
        _changes.Clear();
        _decoded = 0;
        foreach (var batch in _held)
        {
            batch.Release();
        }

        _held.Clear();
    }

    private static WatchEvent Decode(in BufferedChange change) =>
        HistoryReader.ToEvent(change.Main, change.Tombstone, change.Stored.Span, DecodeStored(change));

    /// <summary>The event of a staged change written into <paramref name="target"/>, its key and value slices of the held batch (no copy).</summary>
    private static WatchEvent DecodeInto(in BufferedChange change, WatchEvent target) =>
        HistoryReader.OverwriteEvent(target, change.Main, change.Tombstone, change.Stored, DecodeStored(change));

    private static StoredValue.Decoded DecodeStored(in BufferedChange change)
    {
        if (!StoredValue.TryDecode(change.Stored.Span, change.Tombstone, out var decoded))
        {
            throw new InvariantViolationException($"MVCC watch: the buffered stored value of revision {change.Main} no longer decodes (its pending batch was written again while held).");
        }

        return decoded;
    }
}
