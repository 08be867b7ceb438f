using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Storage;
using EmbeddedRaft.Storage.Wal;

namespace EmbeddedRaft.Consensus.Log;

/// <summary>
/// Rebuilds a <see cref="DurableRaftLog"/>'s state by reading its write-ahead log once, front to
/// back, applying each record exactly as the live call that wrote it did, and refusing (with a
/// <see cref="CorruptionException"/> naming the segment file and the record's offset) any record
/// that the live calls never write: the checks here and in <see cref="DurableRaftLog"/>'s methods
/// are the same rules, so whatever the log accepted it reopens, and whatever it reopens it could
/// have written.
/// </summary>
/// <remarks>
/// <para>Suffix overwrite (Ready.Entries semantics): an entry at or below the last index replaces
/// that entry and every later one.</para>
/// <para>Released segments. Once <see cref="DurableRaftLog.CompactAsync"/> has released the
/// oldest segments, the log no longer starts at its first record: replay is then "unanchored"
/// until the first snapshot marker whose kept entries are all still there (an older marker may
/// precede it in the oldest segment, its kept entries partly released by a later compaction: it is
/// only remembered); that marker says where the log starts (compact index and term), so no released
/// entry is needed. Before it, an entry below the first one seen re-bases the
/// table there (live, it overwrote entries that were all released), and nothing can be checked
/// against the log's start. A log whose oldest segment is not the first (sequence 0) and holds no
/// marker has lost segments.</para>
/// </remarks>
internal static class LogReplay
{
    public static ReplayedLog Replay(WriteAheadLog wal, Func<long, string> segmentPath, bool anchored)
    {
        var table = new EntryTable();
        var markers = new List<(SnapshotMarker, WalPosition)>();
        var hardState = default(HardState);
        var hardStatePosition = default(WalPosition);
        var bootstrap = ConfState.Empty;
        bool sawRecord = false;
        bool sawEntry = false;
        // The newest snapshot index installed or taken, once known (anchored).
        ulong snapshotIndex = 0;

        using var reader = wal.ReadFrom(0UL);
        while (reader.TryReadNext(out var record))
        {
            var position = record.Position;
            try
            {
                switch ((LogRecordType)record.Type)
                {
                    case LogRecordType.Entry:
                    {
                        var (type, term, index) = MessageCodec.PeekEntry(record.Payload.Span);
                        if (index == 0 || index != record.Index)
                        {
                            throw Corrupt(position, $"The entry record's index {record.Index} does not match its entry's index {index}.");
                        }

                        if (!anchored && !sawEntry)
                        {
                            table.Reset(index - 1, 0);
                        }
                        else if (!anchored && index <= table.Offset)
                        {
                            // Before the first marker of a released log: live, this entry overwrote
                            // entries that were all released since. Start again from it.
                            table.Reset(index - 1, 0);
                        }
                        else if (index <= table.Offset)
                        {
                            throw Corrupt(position, $"Entry {index} lies at or below the start of the log (index {table.Offset}, a snapshot or compaction point): such entries are never written.");
                        }
                        else if (index > table.LastIndex + 1)
                        {
                            throw Corrupt(position, $"Entry {index} leaves a gap after the last index {table.LastIndex}: entries out of order.");
                        }
                        else if (index <= table.LastIndex)
                        {
                            if (index <= hardState.Commit && table.TermAt(index) != term)
                            {
                                throw Corrupt(position, $"Entry {index} (term {term}) overwrites the entry of term {table.TermAt(index)} at or below the commit index {hardState.Commit} of the hard state before it.");
                            }

                            table.TruncateFrom(index);
                        }

                        bool predecessorKnown = anchored || index - 1 > table.Offset;
                        if (predecessorKnown && index - 1 >= table.Offset && term < table.TermAt(index - 1))
                        {
                            throw Corrupt(position, $"Entry {index} has term {term}, below the term {table.TermAt(index - 1)} of entry {index - 1}: terms go backwards.");
                        }

                        table.AppendSlot(index, term, type, record.Payload.Length - 1, position);
                        sawEntry = true;
                        break;
                    }

                    case LogRecordType.HardState:
                    {
                        var next = MessageCodec.DecodeHardState(record.Payload.Span);
                        if (HardStateError(hardState, next, anchored ? Math.Max(table.LastIndex, snapshotIndex) : ulong.MaxValue) is { } error)
                        {
                            throw Corrupt(position, error);
                        }

                        hardState = next;
                        hardStatePosition = position;
                        break;
                    }

                    case LogRecordType.SnapshotMarker:
                    {
                        var marker = LogRecordCodec.DecodeMarker(record.Payload.Span);
                        var metadata = marker.Metadata;
                        if (anchored && metadata.Index <= snapshotIndex)
                        {
                            throw Corrupt(position, $"The snapshot marker at index {metadata.Index} is not newer than the snapshot at {snapshotIndex} before it.");
                        }

                        if (marker.Kind == SnapshotMarkerKind.Installed)
                        {
                            if (metadata.Index < hardState.Commit)
                            {
                                throw Corrupt(position, $"The installed snapshot at index {metadata.Index} is below the commit index {hardState.Commit} of the hard state before it.");
                            }

                            table.Reset(metadata.Index, metadata.Term);
                        }
                        else
                        {
                            // The kept entries (C, L] were all written before the marker.
                            bool keptEntriesPresent = sawEntry
                                ? marker.CompactIndex >= table.Offset && marker.LastIndex == table.LastIndex
                                : marker.CompactIndex == marker.LastIndex;
                            if (!anchored && !keptEntriesPresent)
                            {
                                // An older marker than the one whose compaction released the segments
                                // before this one: some entries it kept were released since. A later
                                // marker says where the log starts.
                                snapshotIndex = metadata.Index;
                                markers.Add((marker, position));
                                break;
                            }

                            if (!anchored && !sawEntry)
                            {
                                table.Reset(marker.CompactIndex, marker.CompactTerm);
                            }

                            if (marker.CompactIndex < table.Offset || marker.LastIndex != table.LastIndex)
                            {
                                throw Corrupt(position, $"The snapshot marker at index {metadata.Index} (keeping entries ({marker.CompactIndex}, {marker.LastIndex}]) does not match the log ({table.Offset}, {table.LastIndex}].");
                            }

                            if (metadata.Index > table.Offset && table.TermAt(metadata.Index) != metadata.Term)
                            {
                                throw Corrupt(position, $"The snapshot marker says entry {metadata.Index} has term {metadata.Term}; the log holds term {table.TermAt(metadata.Index)}.");
                            }

                            if (marker.CompactIndex > table.Offset && table.TermAt(marker.CompactIndex) != marker.CompactTerm)
                            {
                                throw Corrupt(position, $"The snapshot marker says entry {marker.CompactIndex} has term {marker.CompactTerm}; the log holds term {table.TermAt(marker.CompactIndex)}.");
                            }

                            table.CompactTo(marker.CompactIndex, marker.CompactTerm);
                        }

                        anchored = true;
                        snapshotIndex = metadata.Index;
                        markers.Add((marker, position));
                        break;
                    }

                    case LogRecordType.Bootstrap:
                    {
                        var conf = LogRecordCodec.DecodeBootstrap(record.Payload.Span);
                        if (sawRecord || !anchored)
                        {
                            throw Corrupt(position, "A bootstrap record is only ever the first record of a log.");
                        }

                        bootstrap = conf;
                        break;
                    }

                    default:
                        throw Corrupt(position, $"Unknown record type {record.Type}.");
                }
            }
            catch (MessageFormatException e)
            {
                throw Corrupt(position, $"The {(LogRecordType)record.Type} record does not decode: {e.Message}");
            }

            sawRecord = true;
        }

        if (sawRecord && !anchored)
        {
            throw new CorruptionException(segmentPath(FirstSequence(wal)), 0, "Older segments of this log were released, but no snapshot marker remains to say where the log starts: segments are missing.");
        }

        if (hardState.Commit > Math.Max(table.LastIndex, snapshotIndex))
        {
            throw Corrupt(hardStatePosition, $"The hard state's commit index {hardState.Commit} is beyond the last index {table.LastIndex} the log ends with.");
        }

        return new ReplayedLog(table, hardState, bootstrap, markers, !sawRecord);

        CorruptionException Corrupt(WalPosition at, string reason) => new(segmentPath(at.Sequence), at.Offset, reason);
    }

    /// <summary>
    /// Why <paramref name="next"/> cannot follow <paramref name="current"/> (null when it can): the
    /// term never goes down, the vote never changes within a term, the commit index never goes down
    /// (Raft persists each before acting on it) and never passes <paramref name="lastIndex"/>
    /// (entries are written before the hard state that commits them).
    /// </summary>
    public static string? HardStateError(HardState current, HardState next, ulong lastIndex)
    {
        if (next.Term < current.Term)
        {
            return $"The hard state's term goes back from {current.Term} to {next.Term}.";
        }

        if (next.Term == current.Term && current.Vote != 0 && next.Vote != current.Vote)
        {
            return $"The vote changes from {current.Vote} to {next.Vote} within term {next.Term}.";
        }

        if (next.Commit < current.Commit)
        {
            return $"The commit index goes back from {current.Commit} to {next.Commit}.";
        }

        if (next.Commit > lastIndex)
        {
            return $"The commit index {next.Commit} is beyond the last index {lastIndex}.";
        }

        return null;
    }

    private static long FirstSequence(WriteAheadLog wal) => DurableRaftLog.ParseSegmentSequence(wal.SegmentPaths[0]);
}
