using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Core;

/// <summary>
/// The part of the log not yet written to stable storage: possibly an incoming snapshot, then
/// entries from <see cref="Offset"/> on. The host persists them from a <see cref="Ready"/>; on
/// <see cref="RawNode.Advance"/> the core marks them stable and drops them from here.
/// </summary>
/// <remarks>
/// Invariant: entry <c>i</c> (for <c>0 &lt;= i &lt; Count</c>) has index <c>Offset + i</c>; if a
/// snapshot is pending, <c>Offset == snapshot.Index + 1</c> or later;
/// <c>Offset &lt;= OffsetInProgress &lt;= Offset + Count</c>.
/// Array slots are written once: slices handed out in messages and Readies stay valid forever,
/// because truncation copies into a new array and appends only write past the end.
/// </remarks>
internal sealed class UnstableLog
{
    /// <summary>The smallest buffer: 10 KiB of entries, far below the large-object heap's threshold.</summary>
    internal const int MinCapacity = 256;

    private Entry[] _buffer = new Entry[MinCapacity];
    private int _start;

    public UnstableLog(ulong offset)
    {
        Offset = offset;
        OffsetInProgress = offset;
    }

    /// <summary>The index of the first unstable entry.</summary>
    public ulong Offset { get; private set; }

    /// <summary>
    /// The index of the first unstable entry not yet handed to the host in a Ready: those before it
    /// are being written (etcd-io/raft's <c>offsetInProgress</c>). A Ready handed out while an
    /// earlier one is still being persisted carries only the entries from here on.
    /// </summary>
    public ulong OffsetInProgress { get; private set; }

    public int Count { get; private set; }

    /// <summary>An incoming snapshot not yet persisted.</summary>
    public SnapshotMetadata? Snapshot { get; private set; }

    public ReadOnlyMemory<Entry> Entries => new(_buffer, _start, Count);

    /// <summary>For tests: the length of the array now holding the entries.</summary>
    internal int BufferLength => _buffer.Length;

    /// <summary>The unstable entries not handed out yet: from <see cref="OffsetInProgress"/> on.</summary>
    public ReadOnlyMemory<Entry> EntriesNotInProgress
    {
        get
        {
            var skip = (int)(OffsetInProgress - Offset);
            return new(_buffer, _start + skip, Count - skip);
        }
    }

    /// <summary>Whether some unstable entry has not been handed out yet.</summary>
    public bool HasEntriesNotInProgress => OffsetInProgress < Offset + (ulong)Count;

    /// <summary>Every unstable entry is now in a Ready the host is persisting.</summary>
    public void AcceptInProgress() => OffsetInProgress = Offset + (ulong)Count;

    public bool TryGetFirstIndex(out ulong index)
    {
        if (Snapshot is { } s)
        {
            index = s.Index + 1;
            return true;
        }

        index = 0;
        return false;
    }

    public bool TryGetLastIndex(out ulong index)
    {
        if (Count > 0)
        {
            index = Offset + (ulong)Count - 1;
            return true;
        }

        if (Snapshot is { } s)
        {
            index = s.Index;
            return true;
        }

        index = 0;
        return false;
    }

    public bool TryGetTerm(ulong index, out ulong term)
    {
        if (index < Offset)
        {
            if (Snapshot is { } s && s.Index == index)
            {
                term = s.Term;
                return true;
            }

            term = 0;
            return false;
        }

        if (!TryGetLastIndex(out var last) || index > last)
        {
            term = 0;
            return false;
        }

        term = _buffer[_start + (int)(index - Offset)].Term;
        return true;
    }

    /// <summary>Entries up to <paramref name="index"/> (with term <paramref name="term"/>) are now durable.</summary>
    public void StableTo(ulong index, ulong term)
    {
        // A mismatching term means the entry was replaced after the Ready was produced: the
        // stable write is of an older entry and the newer one must stay unstable.
        if (!TryGetTerm(index, out var current) || current != term || index < Offset)
        {
            return;
        }

        var n = (int)(index + 1 - Offset);
        _start += n;
        Count -= n;
        Offset = index + 1;
        OffsetInProgress = Math.Max(OffsetInProgress, Offset);
    }

    public void StableSnapshotTo(ulong index)
    {
        if (Snapshot is { } s && s.Index == index)
        {
            Snapshot = null;
        }
    }

    public void Restore(SnapshotMetadata snapshot)
    {
        _start += Count;
        Count = 0;
        Offset = snapshot.Index + 1;
        OffsetInProgress = Offset;
        Snapshot = snapshot;
    }

    /// <summary>Appends entries starting at <c>entries[0].Index</c>, replacing any unstable entries from that index on.</summary>
    public void TruncateAndAppend(ReadOnlySpan<Entry> entries)
    {
        var from = entries[0].Index;
        var end = Offset + (ulong)Count;
        if (from == end)
        {
            EnsureRoom(entries.Length, copy: false);
        }
        else if (from <= Offset)
        {
            // Everything unstable is replaced (the caller checked these indexes are not committed).
            Offset = from;
            Count = 0;
            EnsureRoom(entries.Length, copy: true);
        }
        else if (from < end)
        {
            // Keep [Offset, from) and overwrite the rest: a new array, so handed-out slices stay intact.
            Count = (int)(from - Offset);
            EnsureRoom(entries.Length, copy: true);
        }
        else
        {
            throw new InvariantViolationException($"Unstable append at {from} leaves a gap after {end - 1}.");
        }

        entries.CopyTo(_buffer.AsSpan(_start + Count));
        Count += entries.Length;

        // Entries replaced from `from` on must be handed out again, even if an earlier Ready that
        // is still being written carried their old versions (the host writes Readies in order, so
        // the newer ones win on disk as in memory).
        OffsetInProgress = Math.Min(OffsetInProgress, from);
    }

    /// <summary>Entries in <c>[low, high)</c>; both must lie within the unstable entries.</summary>
    public ReadOnlyMemory<Entry> Slice(ulong low, ulong high)
    {
        if (low > high || low < Offset || high > Offset + (ulong)Count)
        {
            throw new InvariantViolationException($"Unstable slice [{low}, {high}) out of bounds [{Offset}, {Offset + (ulong)Count}).");
        }

        return new ReadOnlyMemory<Entry>(_buffer, _start + (int)(low - Offset), (int)(high - low));
    }

    private void EnsureRoom(int extra, bool copy)
    {
        if (!copy && _start + Count + extra <= _buffer.Length)
        {
            return;
        }

        // Sized from what is held now, never from the largest buffer so far. A buffer is written
        // once (see the remarks), so it keeps the data of every entry ever written to it reachable
        // until the buffer itself is collected: a small one is replaced after a few hundred appends
        // and dies young with that data. One sized for a burst (a follower's entries gathered
        // during a slow fsync) and kept at that size would be a large-object-heap array (85,000
        // bytes or more: 2,125 entries), collected only by a gen2 collection, and every command
        // written to it since would reach gen2 with it (session 14: ~16 such arrays a second, and
        // nearly every proposal's bytes promoted, at 256 proposals in flight).
        var next = new Entry[Math.Max(MinCapacity, (Count + extra) * 2)];
        Array.Copy(_buffer, _start, next, 0, Count);
        _buffer = next;
        _start = 0;
    }
}
