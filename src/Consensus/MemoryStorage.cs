using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus;

/// <summary>
/// An in-memory <see cref="IRaftStorage"/>: for tests, benchmarks, and hosts that persist
/// elsewhere and keep a copy of the recent log in memory. Thread-safe (one lock).
/// </summary>
/// <remarks>
/// The log is an array whose slot 0 is a dummy entry holding the index and term of the last
/// compacted entry. Slots are written once: truncation and compaction copy into a new array, so
/// memory previously returned by <see cref="Entries"/> never changes.
/// </remarks>
public sealed class MemoryStorage : IRaftStorage
{
    private readonly Lock _lock = new();
    private HardState _hardState;
    private ConfState? _confState;
    private SnapshotMetadata _snapshot;
    private Entry[] _entries;
    private int _count;

    /// <summary>Creates an empty storage whose initial configuration is <paramref name="initial"/> (for bootstrapping a new cluster).</summary>
    public MemoryStorage(ConfState? initial = null)
    {
        _snapshot = new SnapshotMetadata(0, 0, initial ?? ConfState.Empty);
        _entries = new Entry[16];
        _count = 1;
    }

    /// <summary>Creates a storage with voters <paramref name="voters"/> and nothing else.</summary>
    public static MemoryStorage WithVoters(params ulong[] voters) => new(new ConfState(voters));

    /// <inheritdoc/>
    public (HardState HardState, ConfState ConfState) InitialState()
    {
        lock (_lock)
        {
            return (_hardState, _confState ?? _snapshot.ConfState);
        }
    }

    /// <summary>
    /// Saves the configuration as of the application's applied index (the result of
    /// <see cref="RawNode.ApplyConfChange"/>, saved when that entry is applied), as the contract of
    /// <see cref="IRaftStorage.InitialState"/> requires. <see cref="InitialState"/> returns it until
    /// <see cref="ApplySnapshot"/> installs a newer snapshot, whose configuration replaces it;
    /// <see cref="CreateSnapshot"/> does not replace it. On restart pass the applied index it
    /// belongs to as <see cref="RaftOptions.AppliedIndex"/> (<c>options with { AppliedIndex = applied }</c>).
    /// </summary>
    public void SetConfState(ConfState conf)
    {
        ArgumentNullException.ThrowIfNull(conf);
        lock (_lock)
        {
            _confState = conf;
        }
    }

    /// <summary>Saves the hard state (from <see cref="Ready.HardState"/>).</summary>
    public void SetHardState(HardState state)
    {
        lock (_lock)
        {
            _hardState = state;
        }
    }

    /// <inheritdoc/>
    public ReadOnlyMemory<Entry> Entries(ulong low, ulong high, ulong maxSizeBytes)
    {
        lock (_lock)
        {
            var offset = _entries[0].Index;
            if (low <= offset)
            {
                throw new LogCompactedException(low, offset + 1);
            }

            var last = offset + (ulong)_count - 1;
            if (high > last + 1 || low > high)
            {
                throw new EntriesUnavailableException(high - 1, last);
            }

            var slice = new ReadOnlyMemory<Entry>(_entries, (int)(low - offset), (int)(high - low));
            return EntrySizes.Limit(slice, maxSizeBytes);
        }
    }

    /// <inheritdoc/>
    public ulong Term(ulong index)
    {
        lock (_lock)
        {
            var offset = _entries[0].Index;
            if (index < offset)
            {
                throw new LogCompactedException(index, offset + 1);
            }

            if (index - offset >= (ulong)_count)
            {
                throw new EntriesUnavailableException(index, offset + (ulong)_count - 1);
            }

            return _entries[index - offset].Term;
        }
    }

    /// <inheritdoc/>
    public ulong LastIndex()
    {
        lock (_lock)
        {
            return _entries[0].Index + (ulong)_count - 1;
        }
    }

    /// <inheritdoc/>
    public ulong FirstIndex()
    {
        lock (_lock)
        {
            return _entries[0].Index + 1;
        }
    }

    /// <inheritdoc/>
    public SnapshotMetadata Snapshot()
    {
        lock (_lock)
        {
            return _snapshot;
        }
    }

    /// <summary>Replaces the whole log with <paramref name="snapshot"/> (a follower installing a leader's snapshot).</summary>
    /// <exception cref="SnapshotOutOfDateException">The snapshot is not newer than the one held.</exception>
    public void ApplySnapshot(SnapshotMetadata snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        lock (_lock)
        {
            if (snapshot.Index <= _snapshot.Index)
            {
                throw new SnapshotOutOfDateException(snapshot.Index, _snapshot.Index);
            }

            _snapshot = snapshot;
            _confState = null;
            _entries = new Entry[16];
            _entries[0] = new Entry(snapshot.Term, snapshot.Index, EntryType.Normal, default);
            _count = 1;
        }
    }

    /// <summary>
    /// Records that the host has saved a snapshot of the application state as of
    /// <paramref name="index"/> (which must be applied), so that followers needing compacted entries
    /// are sent it. <paramref name="conf"/> is the configuration as of that index (the contract of
    /// <see cref="IRaftStorage.InitialState"/>: the latest <see cref="RawNode.ApplyConfChange"/>
    /// result at or before it). Null keeps the
    /// current snapshot's configuration, which is right only if no configuration change was
    /// applied since; it never takes the one saved with <see cref="SetConfState"/>, which may
    /// belong to a later applied index. The data stays in the host's own snapshot store (see
    /// <see cref="SnapshotMetadata"/>). Follow with <see cref="Compact"/> to discard the entries it covers.
    /// </summary>
    /// <exception cref="SnapshotOutOfDateException"><paramref name="index"/> is not above the current snapshot.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is beyond the last index.</exception>
    public SnapshotMetadata CreateSnapshot(ulong index, ConfState? conf)
    {
        lock (_lock)
        {
            if (index <= _snapshot.Index)
            {
                throw new SnapshotOutOfDateException(index, _snapshot.Index);
            }

            var offset = _entries[0].Index;
            var last = offset + (ulong)_count - 1;
            ArgumentOutOfRangeException.ThrowIfGreaterThan(index, last);
            _snapshot = new SnapshotMetadata(index, _entries[index - offset].Term, conf ?? _snapshot.ConfState);
            return _snapshot;
        }
    }

    /// <summary>
    /// Discards entries up to and including <paramref name="compactIndex"/>, keeping its term as
    /// the new dummy entry. The host must not compact past its applied index, nor past the
    /// snapshot (<see cref="CreateSnapshot"/> first): followers needing the discarded entries are
    /// sent <see cref="Snapshot()"/>, which must cover them.
    /// </summary>
    /// <exception cref="LogCompactedException">Already compacted to <paramref name="compactIndex"/> or beyond.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="compactIndex"/> is beyond the last index or the snapshot index.</exception>
    public void Compact(ulong compactIndex)
    {
        lock (_lock)
        {
            var offset = _entries[0].Index;
            if (compactIndex <= offset)
            {
                throw new LogCompactedException(compactIndex, offset + 1);
            }

            var last = offset + (ulong)_count - 1;
            ArgumentOutOfRangeException.ThrowIfGreaterThan(compactIndex, last);
            if (compactIndex > _snapshot.Index)
            {
                throw new ArgumentOutOfRangeException(
                    nameof(compactIndex),
                    compactIndex,
                    $"Cannot compact past the snapshot index {_snapshot.Index}: followers needing the discarded entries would be sent a snapshot that does not cover them. Call {nameof(CreateSnapshot)} first.");
            }

            var skip = (int)(compactIndex - offset);
            var remaining = _count - skip;
            var next = new Entry[Math.Max(16, remaining * 2)];
            next[0] = new Entry(_entries[skip].Term, _entries[skip].Index, EntryType.Normal, default);
            Array.Copy(_entries, skip + 1, next, 1, remaining - 1);
            _entries = next;
            _count = remaining;
        }
    }

    /// <summary>
    /// Appends entries (from <see cref="Ready.Entries"/>): they must be contiguous and start at
    /// or before <c>LastIndex + 1</c>; an overlapping suffix of the log is replaced, and entries
    /// already compacted are skipped.
    /// </summary>
    /// <exception cref="ArgumentException">The entries leave a gap after the last index.</exception>
    public void Append(ReadOnlySpan<Entry> entries)
    {
        if (entries.IsEmpty)
        {
            return;
        }

        lock (_lock)
        {
            var offset = _entries[0].Index;
            var first = offset + 1;
            var lastNew = entries[0].Index + (ulong)entries.Length - 1;
            if (lastNew < first)
            {
                return;
            }

            if (first > entries[0].Index)
            {
                entries = entries[(int)(first - entries[0].Index)..];
            }

            var position = entries[0].Index - offset;
            if (position > (ulong)_count)
            {
                throw new ArgumentException(
                    $"Missing log entries: last index is {offset + (ulong)_count - 1}, appending from {entries[0].Index}.",
                    nameof(entries));
            }

            var keep = (int)position;
            var needed = keep + entries.Length;
            if (keep < _count || needed > _entries.Length)
            {
                // Truncation or growth: copy into a fresh array so handed-out memory never changes.
                var next = new Entry[Math.Max(needed, _entries.Length * 2)];
                Array.Copy(_entries, next, keep);
                _entries = next;
            }

            entries.CopyTo(_entries.AsSpan(keep));
            _count = needed;
        }
    }
}
