using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Core;

/// <summary>
/// The part of the log not yet written to stable storage: possibly an incoming snapshot, then
/// entries from <see cref="Offset"/> on. The host persists them from a <see cref="Ready"/>; on
/// <see cref="RawNode.Advance"/> the core marks them stable and drops them from here.
/// </summary>
/// <remarks>
/// <para>
/// Invariant: the entries are the runs in order, run <c>k</c> holding the indexes after those of
/// runs <c>0..k-1</c>, starting at <see cref="Offset"/>; <see cref="Count"/> is the sum of the runs'
/// counts and no run is empty; if a snapshot is pending, <c>Offset == snapshot.Index + 1</c> or later;
/// <c>Offset &lt;= OffsetInProgress &lt;= Offset + Count</c>. The stable runs hold the entries
/// <c>[StableOffset, Offset)</c> (at most <see cref="MaxStableEntries"/>), each the entry the storage
/// holds at its index: every write to the storage comes from here, and a replacement below
/// <see cref="Offset"/> cuts them first.
/// </para>
/// <para>
/// Storage: fixed-size chunks (arrays of <see cref="ChunkEntries"/> entries, at most
/// <see cref="MaxChunkEntries"/>), each well under the large-object heap's 85,000 bytes. A chunk's
/// slots are written once: slices handed out in messages and Readies stay valid forever, because
/// appends only write slots of the newest chunk that were never written, and a truncation only
/// shortens runs (the entries after it go to slots never written). A slice within one chunk is
/// handed out without copying; one that spans chunks is copied (a Ready's entries or an append's
/// when they started in one chunk and went on in the next).
/// </para>
/// <para>
/// Why chunks: a written-once buffer keeps the data of every entry ever written to it reachable
/// until the buffer itself is collected. One contiguous buffer for 1,000+ unstable entries (1,024
/// proposals in flight) is a large-object-heap array, swept only by a gen2 collection, and every
/// command written into it reached gen2 with it (session 14: ~1.5 KB promoted to gen2 per proposal,
/// 50–90 gen2 collections in 10 s). A small chunk dies young, and its commands with it.
/// </para>
/// </remarks>
internal sealed class UnstableLog
{
    /// <summary>The usual chunk: 40 KiB of 40-byte entries.</summary>
    internal const int ChunkEntries = 1024;

    /// <summary>
    /// The largest chunk: an append longer than <see cref="ChunkEntries"/> gets one chunk of its own
    /// up to this size (81,936 bytes with the array's header, under the large-object heap's 85,000);
    /// a longer one is spread over several.
    /// </summary>
    internal const int MaxChunkEntries = 2048;

    /// <summary>The most stable entries kept for applying (a follower that learns of commits late drops the oldest).</summary>
    internal const int MaxStableEntries = 2 * MaxChunkEntries;

    private readonly List<Run> _runs = [];

    // Entries marked stable but not handed out for applying yet, [StableOffset, Offset): the
    // committed entries of the next Readies, served from their chunks instead of copied out of the
    // storage (on every node an entry is stable before it is known committed: the leader counts
    // its own write only once persisted). Released once handed out, and never more than
    // MaxStableEntries.
    private readonly List<Run> _stableRuns = [];
    private int _stableCount;

    // The chunk appends go to (the last run's, or one whose runs are all stable by now) and how
    // many of its slots were ever written: the slots from there on were never handed out.
    private Entry[]? _tail;
    private int _tailWritten;

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

    /// <summary>Every unstable entry (copied if they span chunks).</summary>
    public ReadOnlyMemory<Entry> Entries => Slice(Offset, Offset + (ulong)Count);

    /// <summary>For tests: the length of the longest chunk now holding entries or taking appends.</summary>
    internal int LongestChunkLength
    {
        get
        {
            var longest = _tail?.Length ?? 0;
            foreach (var run in _runs)
            {
                longest = Math.Max(longest, run.Chunk.Length);
            }

            return longest;
        }
    }

    /// <summary>For tests: how many chunks hold unstable entries.</summary>
    internal int RunCount => _runs.Count;

    /// <summary>The unstable entries not handed out yet: from <see cref="OffsetInProgress"/> on (copied if they span chunks).</summary>
    public ReadOnlyMemory<Entry> EntriesNotInProgress => Slice(OffsetInProgress, Offset + (ulong)Count);

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

        var (run, position) = Locate(index);
        term = _runs[run].Chunk[position].Term;
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

        DropFirst((int)(index + 1 - Offset));
        Offset = index + 1;
        OffsetInProgress = Math.Max(OffsetInProgress, Offset);
    }

    /// <summary>The first index of the stable entries still held for applying (<see cref="Offset"/> if none).</summary>
    public ulong StableOffset => Offset - (ulong)_stableCount;

    /// <summary>
    /// Entries in <c>[low, high)</c> from those marked stable and not handed out for applying, if
    /// they are all held there and lie in one chunk (no copy); else false (read them from the storage).
    /// </summary>
    public bool TryStableSlice(ulong low, ulong high, out ReadOnlyMemory<Entry> entries) =>
        TryStablePrefix(low, high, out entries) && (ulong)entries.Length == high - low;

    /// <summary>
    /// The longest prefix of the entries in <c>[low, high)</c> that the stable entries not handed out
    /// for applying hold in one stretch of a chunk (no copy; at least one); false if
    /// <paramref name="low"/> is not held there or the range is empty.
    /// </summary>
    public bool TryStablePrefix(ulong low, ulong high, out ReadOnlyMemory<Entry> entries)
    {
        entries = default;
        if (low >= high || low < StableOffset || low >= Offset)
        {
            return false;
        }

        var skip = low - StableOffset;
        foreach (var run in _stableRuns)
        {
            if (skip < (ulong)run.Count)
            {
                var length = (int)Math.Min(high - low, (ulong)run.Count - skip);
                entries = new ReadOnlyMemory<Entry>(run.Chunk, run.Start + (int)skip, length);
                return true;
            }

            skip -= (ulong)run.Count;
        }

        throw new InvariantViolationException($"Stable index {low} not found in runs holding {_stableCount} entries from {StableOffset}.");
    }

    /// <summary>Entries up to <paramref name="index"/> were handed out for applying: stable ones are no longer held.</summary>
    public void ReleaseStableTo(ulong index)
    {
        if (index >= StableOffset)
        {
            DropStable((int)Math.Min((ulong)_stableCount, index + 1 - StableOffset));
        }
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
        // The runs' chunks stay with whatever slices were handed out; appends go on in the tail's
        // unwritten slots.
        _runs.Clear();
        _stableRuns.Clear();
        _stableCount = 0;
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
            // Appends after the last entry.
        }
        else if (from <= Offset)
        {
            // Everything unstable is replaced (the caller checked these indexes are not committed),
            // and so are the stable entries held from `from` on.
            _runs.Clear();
            Count = 0;
            KeepStableBelow(from);
            Offset = from;
        }
        else if (from < end)
        {
            // Keep [Offset, from): the runs only get shorter, and the new entries go to slots never
            // written, so handed-out slices stay intact.
            KeepFirst((int)(from - Offset));
        }
        else
        {
            throw new InvariantViolationException($"Unstable append at {from} leaves a gap after {end - 1}.");
        }

        Append(entries);

        // Entries replaced from `from` on must be handed out again, even if an earlier Ready that
        // is still being written carried their old versions (the host writes Readies in order, so
        // the newer ones win on disk as in memory).
        OffsetInProgress = Math.Min(OffsetInProgress, from);
    }

    /// <summary>Entries in <c>[low, high)</c>; both must lie within the unstable entries. Copied only if they span chunks.</summary>
    public ReadOnlyMemory<Entry> Slice(ulong low, ulong high) => Slice(low, high, ulong.MaxValue);

    /// <summary>
    /// The longest prefix of the entries in <c>[low, high)</c> whose encoded size stays within
    /// <paramref name="maxSizeBytes"/>, at least one (as <see cref="EntrySizes.Limit"/>); the bounds
    /// must lie within the unstable entries. Copied only if the prefix spans chunks.
    /// </summary>
    public ReadOnlyMemory<Entry> Slice(ulong low, ulong high, ulong maxSizeBytes)
    {
        if (low > high || low < Offset || high > Offset + (ulong)Count)
        {
            throw new InvariantViolationException($"Unstable slice [{low}, {high}) out of bounds [{Offset}, {Offset + (ulong)Count}).");
        }

        if (low == high)
        {
            return default;
        }

        var (run, position) = Locate(low);
        var first = _runs[run];
        var wanted = high - low;
        var inFirst = first.Start + first.Count - position;
        if (wanted <= (ulong)inFirst)
        {
            return EntrySizes.Limit(new ReadOnlyMemory<Entry>(first.Chunk, position, (int)wanted), maxSizeBytes);
        }

        var limited = EntrySizes.Limit(new ReadOnlyMemory<Entry>(first.Chunk, position, inFirst), maxSizeBytes);
        if (limited.Length < inFirst || maxSizeBytes == 0)
        {
            return limited;
        }

        // The entries go on in the next chunks: count how many fit, then copy them into one array.
        var take = inFirst;
        var size = EntrySizes.Encoded(limited.Span);
        for (var r = run + 1; take < (int)wanted; r++)
        {
            var span = _runs[r].Entries.Span;
            var n = Math.Min(span.Length, (int)wanted - take);
            var i = 0;
            while (i < n)
            {
                size += (ulong)span[i].EncodedSizeBytes;
                if (size > maxSizeBytes)
                {
                    break;
                }

                i++;
            }

            take += i;
            if (i < n)
            {
                break;
            }
        }

        var copy = new Entry[take];
        var copied = 0;
        for (var r = run; copied < take; r++)
        {
            var span = r == run ? limited.Span : _runs[r].Entries.Span;
            var n = Math.Min(span.Length, take - copied);
            span[..n].CopyTo(copy.AsSpan(copied));
            copied += n;
        }

        return copy;
    }

    // Writes the entries after the last run: into the tail's unwritten slots when they all fit
    // there (a Ready or an append then usually lies in one chunk and is handed out without a
    // copy), else into new chunks.
    private void Append(ReadOnlySpan<Entry> entries)
    {
        while (!entries.IsEmpty)
        {
            if (_tail is null || _tail.Length - _tailWritten < Math.Min(entries.Length, ChunkEntries))
            {
                _tail = new Entry[Math.Clamp(entries.Length, ChunkEntries, MaxChunkEntries)];
                _tailWritten = 0;
            }

            var n = Math.Min(entries.Length, _tail.Length - _tailWritten);
            entries[..n].CopyTo(_tail.AsSpan(_tailWritten));
            if (_runs.Count > 0 && ReferenceEquals(_runs[^1].Chunk, _tail) && _runs[^1].Start + _runs[^1].Count == _tailWritten)
            {
                var last = _runs[^1];
                _runs[^1] = last with { Count = last.Count + n };
            }
            else
            {
                _runs.Add(new Run(_tail, _tailWritten, n));
            }

            _tailWritten += n;
            Count += n;
            entries = entries[n..];
        }
    }

    // The run and chunk position of an unstable index (Offset <= index < Offset + Count).
    private (int Run, int Position) Locate(ulong index)
    {
        var skip = index - Offset;

        // Most lookups are of recent entries: try the last run first.
        var lastRun = _runs[^1];
        var beforeLast = (ulong)(Count - lastRun.Count);
        if (skip >= beforeLast)
        {
            return (_runs.Count - 1, lastRun.Start + (int)(skip - beforeLast));
        }

        for (var r = 0; r < _runs.Count; r++)
        {
            var run = _runs[r];
            if (skip < (ulong)run.Count)
            {
                return (r, run.Start + (int)skip);
            }

            skip -= (ulong)run.Count;
        }

        throw new InvariantViolationException($"Unstable index {index} not found in runs holding {Count} entries from {Offset}.");
    }

    private void DropFirst(int n)
    {
        Count -= n;
        RemoveFirst(_runs, n, toStable: true);
        CheckCount();
        if (_stableCount > MaxStableEntries)
        {
            DropStable(_stableCount - MaxStableEntries);
        }
    }

    // Removes the first n entries of `runs` (which hold at least n), a run cut where n ends; with
    // `toStable`, each removed piece joins the stable window, in order.
    private void RemoveFirst(List<Run> runs, int n, bool toStable)
    {
        var drop = 0;
        while (n > 0)
        {
            var run = runs[drop];
            var taken = Math.Min(run.Count, n);
            if (toStable)
            {
                AddStable(run with { Count = taken });
            }

            if (taken == run.Count)
            {
                drop++;
            }
            else
            {
                runs[drop] = new Run(run.Chunk, run.Start + taken, run.Count - taken);
            }

            n -= taken;
        }

        runs.RemoveRange(0, drop);
    }

    // Appends a run that just became stable to the window (it follows the window's last entry).
    private void AddStable(Run run)
    {
        if (_stableRuns.Count > 0 && ReferenceEquals(_stableRuns[^1].Chunk, run.Chunk) && _stableRuns[^1].Start + _stableRuns[^1].Count == run.Start)
        {
            _stableRuns[^1] = _stableRuns[^1] with { Count = _stableRuns[^1].Count + run.Count };
        }
        else
        {
            _stableRuns.Add(run);
        }

        _stableCount += run.Count;
    }

    private void DropStable(int n)
    {
        _stableCount -= n;
        RemoveFirst(_stableRuns, n, toStable: false);
    }

    // Keeps the stable entries below `index` (which is at most Offset): those from it on are being replaced.
    private void KeepStableBelow(ulong index)
    {
        var remove = (int)(Offset - Math.Max(index, StableOffset));
        _stableCount -= remove;
        while (remove > 0)
        {
            var last = _stableRuns[^1];
            if (last.Count <= remove)
            {
                remove -= last.Count;
                _stableRuns.RemoveAt(_stableRuns.Count - 1);
            }
            else
            {
                _stableRuns[^1] = last with { Count = last.Count - remove };
                remove = 0;
            }
        }
    }

    private void KeepFirst(int keep)
    {
        Count = keep;
        var r = 0;
        while (keep > 0)
        {
            var run = _runs[r];
            if (run.Count >= keep)
            {
                _runs[r] = run with { Count = keep };
                r++;
                break;
            }

            keep -= run.Count;
            r++;
        }

        _runs.RemoveRange(r, _runs.Count - r);
        CheckCount();
    }

    private void CheckCount()
    {
        var sum = 0;
        foreach (var run in _runs)
        {
            if (run.Count <= 0)
            {
                throw new InvariantViolationException($"An empty run in the unstable log at {Offset}.");
            }

            sum += run.Count;
        }

        if (sum != Count)
        {
            throw new InvariantViolationException($"The unstable log's runs hold {sum} entries, not {Count}.");
        }

        sum = 0;
        foreach (var run in _stableRuns)
        {
            sum += run.Count;
        }

        if (sum != _stableCount)
        {
            throw new InvariantViolationException($"The stable runs hold {sum} entries, not {_stableCount}.");
        }
    }

    /// <summary>A stretch of one chunk holding consecutive unstable entries.</summary>
    private readonly record struct Run(Entry[] Chunk, int Start, int Count)
    {
        public ReadOnlyMemory<Entry> Entries => new(Chunk, Start, Count);
    }
}
