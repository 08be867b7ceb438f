using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Core;

/// <summary>
/// The node's whole log: stable entries read through <see cref="IRaftStorage"/>, followed by
/// the <see cref="UnstableLog"/>. Tracks the commit and applied indexes.
/// Invariants: <c>Applied &lt;= Applying &lt;= Committed &lt;= LastIndex</c> (Applying is the last
/// committed index handed out in a Ready, above Applied while that Ready is outstanding); committed
/// entries never change.
/// </summary>
internal sealed class RaftLog
{
    private readonly IRaftStorage _storage;

    public RaftLog(IRaftStorage storage, ulong maxApplyingBytes)
    {
        _storage = storage;
        MaxApplyingBytes = maxApplyingBytes;
        var first = storage.FirstIndex();
        var last = storage.LastIndex();
        Unstable = new UnstableLog(last + 1);

        // The application starts from the storage's snapshot (etcd: applied starts at the
        // snapshot's index unless the host says otherwise). A storage may retain entries below its
        // snapshot for slow followers; those are inside the snapshot, so they count as committed
        // and applied, never handed out again.
        var start = Math.Max(first - 1, SnapshotIndex(storage));
        if (start > last)
        {
            throw new ArgumentException(
                $"The storage's snapshot index {start} is beyond its last index {last}.", nameof(storage));
        }

        Committed = start;
        Applied = start;
        Applying = start;
    }

    // The storage's snapshot index, or 0 while one is being produced (then FirstIndex - 1 rules).
    private static ulong SnapshotIndex(IRaftStorage storage)
    {
        try
        {
            return storage.Snapshot().Index;
        }
        catch (SnapshotTemporarilyUnavailableException)
        {
            return 0;
        }
    }

    public UnstableLog Unstable { get; }

    /// <summary>The highest index known to be committed.</summary>
    public ulong Committed { get; private set; }

    /// <summary>The highest index the application has applied.</summary>
    public ulong Applied { get; private set; }

    /// <summary>
    /// The highest committed index handed to the host for applying (etcd-io/raft's
    /// <c>applying</c>): above <see cref="Applied"/> while Readies that carry committed entries are
    /// outstanding. The next Ready's committed entries start after it.
    /// </summary>
    public ulong Applying { get; private set; }

    /// <summary>The most committed-entry bytes one <see cref="Ready"/> hands out.</summary>
    public ulong MaxApplyingBytes { get; }

    public ulong FirstIndex() => Unstable.TryGetFirstIndex(out var index) ? index : _storage.FirstIndex();

    public ulong LastIndex() => Unstable.TryGetLastIndex(out var index) ? index : _storage.LastIndex();

    public ulong LastTerm()
    {
        var last = LastIndex();
        if (TryTerm(last, out var term) != TermLookup.Found)
        {
            throw new InvariantViolationException($"The term of the last index {last} is not available.");
        }

        return term;
    }

    /// <summary>The term at <paramref name="index"/>, for indexes in <c>[FirstIndex - 1, LastIndex]</c>.</summary>
    public TermLookup TryTerm(ulong index, out ulong term)
    {
        // The valid range starts at the dummy entry: the one just before the first index.
        var dummy = FirstIndex() - 1;
        if (index < dummy)
        {
            term = 0;
            return TermLookup.Compacted;
        }

        if (index > LastIndex())
        {
            term = 0;
            return TermLookup.Unavailable;
        }

        if (Unstable.TryGetTerm(index, out term))
        {
            return TermLookup.Found;
        }

        try
        {
            term = _storage.Term(index);
            return TermLookup.Found;
        }
        catch (LogCompactedException)
        {
            term = 0;
            return TermLookup.Compacted;
        }
        catch (EntriesUnavailableException ex)
        {
            throw new InvariantViolationException($"Storage lost index {index} that it reported as present.", ex);
        }
    }

    public bool MatchTerm(ulong index, ulong term) => TryTerm(index, out var t) == TermLookup.Found && t == term;

    /// <summary>Raft §5.4.1: a log is at least as up to date if its last term is higher, or equal with an index at least as large.</summary>
    public bool IsUpToDate(ulong lastIndex, ulong term)
    {
        var ourTerm = LastTerm();
        return term > ourTerm || (term == ourTerm && lastIndex >= LastIndex());
    }

    /// <summary>The index of the first entry that is new or conflicts (same index, different term), or 0 if all match.</summary>
    public ulong FindConflict(ReadOnlySpan<Entry> entries)
    {
        var last = LastIndex();
        foreach (ref readonly var entry in entries)
        {
            if (entry.Index > last || !MatchTerm(entry.Index, entry.Term))
            {
                return entry.Index;
            }
        }

        return 0;
    }

    /// <summary>
    /// Walks back from <paramref name="index"/> to the last entry whose term is at most
    /// <paramref name="term"/>: every entry above it is known not to match a log whose entry at
    /// <paramref name="index"/> has term <paramref name="term"/> (Raft §5.3 "fast backtracking",
    /// one round trip per term rather than per entry). Returns the index and its term (0 if compacted).
    /// </summary>
    public (ulong Index, ulong Term) FindConflictByTerm(ulong index, ulong term)
    {
        while (true)
        {
            if (TryTerm(index, out var ourTerm) != TermLookup.Found)
            {
                return (index, 0);
            }

            if (ourTerm <= term || index == 0)
            {
                return (index, ourTerm);
            }

            index--;
        }
    }

    /// <summary>
    /// The follower's AppendEntries consistency check and append (Raft §5.3): if the entry at
    /// <paramref name="index"/> has term <paramref name="logTerm"/>, appends what is new,
    /// truncating a conflicting suffix, and advances the commit index. Returns false on mismatch.
    /// </summary>
    /// <exception cref="MessageRejectedException">The entries conflict with a committed entry (a broken or hostile leader).</exception>
    public bool TryAppend(ulong index, ulong logTerm, ulong committed, ReadOnlyMemory<Entry> entries, out ulong lastNewIndex)
    {
        lastNewIndex = 0;
        if (!MatchTerm(index, logTerm))
        {
            return false;
        }

        lastNewIndex = index + (ulong)entries.Length;
        var conflict = FindConflict(entries.Span);
        if (conflict != 0)
        {
            if (conflict <= Committed)
            {
                throw new MessageRejectedException(
                    MessageRejectReason.Malformed,
                    $"Append conflicts with committed entry {conflict} (committed {Committed}).");
            }

            Append(entries.Span[(int)(conflict - (index + 1))..]);
        }

        // Commit only what this message proves matches the leader's log (Raft Figure 2, rule 5).
        CommitTo(Math.Min(committed, lastNewIndex));
        return true;
    }

    public ulong Append(ReadOnlySpan<Entry> entries)
    {
        if (entries.IsEmpty)
        {
            return LastIndex();
        }

        if (entries[0].Index <= Committed)
        {
            throw new InvariantViolationException($"Append at {entries[0].Index} would overwrite committed entries (committed {Committed}).");
        }

        Unstable.TruncateAndAppend(entries);
        return LastIndex();
    }

    /// <summary>Entries from <paramref name="low"/> to the end, size-limited; false if <paramref name="low"/> is compacted.</summary>
    public bool TryEntries(ulong low, ulong maxSizeBytes, out ReadOnlyMemory<Entry> entries)
    {
        var last = LastIndex();
        if (low > last)
        {
            entries = default;
            return true;
        }

        return TrySlice(low, last + 1, maxSizeBytes, out entries);
    }

    /// <summary>Entries in <c>[low, high)</c>, size-limited (at least one); false if <paramref name="low"/> is compacted.</summary>
    public bool TrySlice(ulong low, ulong high, ulong maxSizeBytes, out ReadOnlyMemory<Entry> entries) =>
        TrySlice(low, high, maxSizeBytes, inPlace: false, out entries);

    /// <summary>
    /// Entries in <c>[low, high)</c>, size-limited (at least one); with <paramref name="inPlace"/> a
    /// range that starts in the stable entries the unstable log still holds ends where their stretch of
    /// one chunk does, so it is never read back from the storage; false if <paramref name="low"/> is
    /// compacted.
    /// </summary>
    private bool TrySlice(ulong low, ulong high, ulong maxSizeBytes, bool inPlace, out ReadOnlyMemory<Entry> entries)
    {
        entries = default;
        if (low < FirstIndex())
        {
            return false;
        }

        if (high > LastIndex() + 1 || low > high)
        {
            throw new InvariantViolationException($"Slice [{low}, {high}) out of bounds (last {LastIndex()}).");
        }

        if (low == high)
        {
            return true;
        }

        var unstableOffset = Unstable.Offset;
        ReadOnlyMemory<Entry> stored = default;
        if (low < unstableOffset)
        {
            var storedHigh = Math.Min(high, unstableOffset);
            try
            {
                // Entries just marked stable are still at hand in the unstable log's chunks (they
                // are what the storage holds at those indexes): no copy out of the storage.
                var isHeld = inPlace
                    ? Unstable.TryStablePrefix(low, storedHigh, out var held)
                    : Unstable.TryStableSlice(low, storedHigh, out held);
                stored = isHeld
                    ? EntrySizes.Limit(held, maxSizeBytes)
                    : _storage.Entries(low, storedHigh, maxSizeBytes);
            }
            catch (LogCompactedException)
            {
                return false;
            }
            catch (EntriesUnavailableException ex)
            {
                throw new InvariantViolationException($"Storage has no entries [{low}, {storedHigh}) though they are stable.", ex);
            }

            if ((ulong)stored.Length < storedHigh - low || high <= unstableOffset)
            {
                entries = stored;
                return true;
            }
        }

        if (stored.IsEmpty)
        {
            entries = Unstable.Slice(Math.Max(low, unstableOffset), high, maxSizeBytes);
            return true;
        }

        // Both parts: concatenate, respecting the size limit over the whole (the stored part
        // already holds at least one entry, so taking nothing more is fine).
        var size = EntrySizes.Encoded(stored.Span);
        var take = 0;
        ReadOnlyMemory<Entry> unstable = default;
        if (size < maxSizeBytes)
        {
            // At least one entry, even if it alone is over the budget: dropped below.
            unstable = Unstable.Slice(unstableOffset, high, maxSizeBytes - size);
            take = unstable.Length;
            if (take == 1 && size + (ulong)unstable.Span[0].EncodedSizeBytes > maxSizeBytes)
            {
                take = 0;
            }
        }

        if (take == 0)
        {
            entries = stored;
            return true;
        }

        var combined = new Entry[stored.Length + take];
        stored.Span.CopyTo(combined);
        unstable.Span[..take].CopyTo(combined.AsSpan(stored.Length));
        entries = combined;
        return true;
    }

    public SnapshotMetadata Snapshot() => Unstable.Snapshot ?? _storage.Snapshot();

    public bool HasPendingSnapshot => Unstable.Snapshot is not null;

    /// <summary>
    /// Committed entries not yet applied, at most <see cref="MaxApplyingBytes"/> (at least one). A batch
    /// that starts in the stable entries the unstable log holds ends where their stretch of one chunk
    /// does; the entries after the cut (durable too) go to the next Ready. Reading such a batch back
    /// from the storage cost a fresh entry array per batch on every member (session 20: ~21% of the
    /// entries applied under store-load). A batch that goes on into unstable entries is still joined
    /// into one array: cut there, the rest can wait for this node's own write (a host that holds back
    /// Readies during a write takes them only once durable); session 20 built that cut too and took it
    /// back after RaftNode's 256-in-flight row ran slower in four of five (noisy) pairs.
    /// </summary>
    public ReadOnlyMemory<Entry> NextCommittedEntries()
    {
        if (HasPendingSnapshot)
        {
            // The snapshot must be applied before any entry after it.
            return default;
        }

        var low = Math.Max(Applying + 1, FirstIndex());
        var high = Committed + 1;
        if (low >= high)
        {
            return default;
        }

        if (!TrySlice(low, high, MaxApplyingBytes, inPlace: true, out var entries))
        {
            throw new InvariantViolationException($"Committed entries from {low} were compacted before being applied (applied {Applied}, applying {Applying}).");
        }

        return entries;
    }

    public bool HasNextCommittedEntries => !HasPendingSnapshot && Committed > Math.Max(Applying, FirstIndex() - 1);

    /// <summary>Committed entries up to <paramref name="index"/> were handed out in a Ready.</summary>
    public void AcceptApplying(ulong index)
    {
        if (index < Applying || index > Committed)
        {
            throw new InvariantViolationException($"Applying index {index} is outside [{Applying}, {Committed}].");
        }

        Applying = index;
        Unstable.ReleaseStableTo(index);
    }

    public void CommitTo(ulong index)
    {
        // Never decrease the commit index (a stale message may carry a lower one).
        if (Committed < index)
        {
            if (LastIndex() < index)
            {
                throw new InvariantViolationException($"Commit index {index} is beyond the last index {LastIndex()}.");
            }

            Committed = index;
        }
    }

    public void AppliedTo(ulong index)
    {
        if (index == 0)
        {
            return;
        }

        if (Committed < index || index < Applied)
        {
            throw new InvariantViolationException($"Applied index {index} is outside [{Applied}, {Committed}].");
        }

        Applied = index;
        Applying = Math.Max(Applying, index);
        Unstable.ReleaseStableTo(Applying);
    }

    /// <summary>
    /// Commits <paramref name="index"/> if its entry is from <paramref name="term"/>: Raft §5.4.2,
    /// a leader only commits entries of its own term by counting replicas.
    /// </summary>
    public bool TryCommit(ulong index, ulong term)
    {
        if (index > Committed && TryTerm(index, out var t) == TermLookup.Found && t == term)
        {
            CommitTo(index);
            return true;
        }

        return false;
    }

    /// <summary>Replaces the log with a snapshot (a follower installing one).</summary>
    public void Restore(SnapshotMetadata snapshot)
    {
        Committed = snapshot.Index;
        Unstable.Restore(snapshot);
    }

    /// <summary>
    /// Entries up to <paramref name="index"/> (of <paramref name="term"/>) are durable. Those already
    /// handed out for applying (a follower's committed batch handed out while its own write ran) do
    /// not join the stable window: it holds only entries above <see cref="Applying"/>, which is what
    /// lets a TCP follower give a received frame back once its entries are applied and out of the
    /// durable log's cache (RaftNode's ReceivedFrameLedger).
    /// </summary>
    public void StableTo(ulong index, ulong term)
    {
        Unstable.StableTo(index, term);
        Unstable.ReleaseStableTo(Applying);
    }

    public void StableSnapshotTo(ulong index)
    {
        Unstable.StableSnapshotTo(index);
        if (Applied < index)
        {
            // The snapshot is the application's state up to its index.
            Applied = index;
        }

        Applying = Math.Max(Applying, Applied);
    }
}
