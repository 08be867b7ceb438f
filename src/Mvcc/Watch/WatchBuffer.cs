using EmbeddedRaft.Mvcc.Store;

namespace EmbeddedRaft.Mvcc.Watch;

/// <summary>
/// A watcher's live changes its consumer has not taken yet: filled by the writer (under the hub's
/// lock), then taken whole by the consumer, which decodes the events on its own thread
/// (<see cref="TakeEvents"/>), so building a watch's event objects costs the writer nothing.
/// </summary>
/// <remarks>
/// <para>Bytes: a staged change slices the stored value in the pending batch that holds its revision,
/// which the buffer <see cref="PendingBatch.Hold"/>s (once per batch, from the writer's thread, before
/// the batch is swapped out) until its events are decoded, so the writer does not write that batch's
/// buffers again meanwhile. Batches come in revision order: only the newest held one can be the
/// batch of the next change.</para>
/// <para>Thread-safety: the writer fills it under the hub's lock while it is the watcher's
/// <see cref="Watcher.Buffer"/>; once taken it belongs to the consumer alone.</para>
/// </remarks>
internal sealed class WatchBuffer
{
    private readonly List<BufferedChange> _changes = [];
    private readonly List<PendingBatch> _held = new(2);

    /// <summary>Changes staged.</summary>
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

    /// <summary>
    /// Consumer thread: the events, in order, decoded from the held batches' bytes (or the built
    /// ones); then the batches are released and the buffer is empty, ready for reuse.
    /// </summary>
    /// <exception cref="InvariantViolationException">A staged value no longer decodes (the writer checked it when it staged it).</exception>
    public List<WatchEvent> TakeEvents()
    {
        try
        {
            var events = new List<WatchEvent>(_changes.Count);
            foreach (ref readonly var change in System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_changes))
            {
                events.Add(change.Built ?? Decode(change));
            }

            return events;
        }
        finally
        {
            Empty();
        }
    }

    /// <summary>Drops every change unread and releases the held batches (the watch ended without its consumer taking them).</summary>
    public void Empty()
    {
        _changes.Clear();
        foreach (var batch in _held)
        {
            batch.Release();
        }

        _held.Clear();
    }

    private static WatchEvent Decode(in BufferedChange change)
    {
        var stored = change.Stored.Span;
        if (!StoredValue.TryDecode(stored, change.Tombstone, out var decoded))
        {
            throw new InvariantViolationException($"MVCC watch: the buffered stored value of revision {change.Main} no longer decodes (its pending batch was written again while held).");
        }

        return HistoryReader.ToEvent(change.Main, change.Tombstone, stored, decoded);
    }
}
