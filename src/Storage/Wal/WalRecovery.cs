using System.Globalization;
using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Storage.Wal;

/// <summary>
/// Opening a log directory: find the segments, check their headers and sequence, scan the last
/// one to its end, and repair a torn tail. The rule for the last segment (docs/formats.md):
/// the log ends at the first frame that is not valid. When that frame can be explained by a torn
/// write (a zero length word; or a well-formed length word with a crc mismatch and one of its
/// sector pieces all zero; or a frame running past the end of the file), everything from it to
/// the last non-zero byte of the segment is the torn tail: it is copied to a side file, then
/// zeroed — unless a genuine frame after it claims (in its synced word) that the log was durable
/// past the damage: flushed bytes cannot be torn, so that is corruption too. Any other invalid
/// frame is corruption and the open fails. A last segment whose trailer names a successor means
/// the successor was deleted or lost: the open fails naming it.
/// <para>A recycled last segment holds its previous life's bytes past the tail, and a torn write's
/// lost pieces read as those, not as zeros: there the log ends at the first offset without a valid
/// frame of this life, whatever it holds; the torn tail is this life's frames found after it (a
/// damaged frame at the end, genuine frames beyond), and the same synced-word proof refuses to
/// cut a flushed byte.</para>
/// </summary>
internal static class WalRecovery
{
    private const int CopyChunkBytes = 1024 * 1024;

    public static RecoveredLog Recover(IFileSystem fileSystem, string directory, WalOptions options)
    {
        var segments = ListSegments(fileSystem, directory);
        if (segments.Count == 0)
        {
            var header = WalFormat.BuildSegmentHeaderFrame(0, 0, 0, recycled: false, out uint crc);
            var first = CreateSegment(fileSystem, directory, options, new SegmentCut(0, 0, header, Recycled: false));
            return new RecoveredLog([new SegmentInfo(0, 0, first.Path)], first, header.Length, crc, FrameTag.None, 0, null);
        }

        for (int i = 0; i < segments.Count - 1; i++)
        {
            using var file = fileSystem.Open(segments[i].Path, FileOpenMode.ReadOnly);
            using var scanner = new SegmentScanner(file, file.Length);
            scanner.ReadHeader(segments[i].Sequence, segments[i].FirstIndex);
        }

        var last = segments[^1];
        var segment = fileSystem.Open(last.Path, FileOpenMode.OpenExisting);
        try
        {
            CheckNoSuccessorWasRecorded(segment, last);
            var (tailOffset, tailCrc, tag, lastIndex, repair, needsSyncMark) = ScanLastSegment(fileSystem, segment, last);
            // A segment is preallocated before it is named; this restores the size if a filesystem lost it.
            if (segment.Length < options.SegmentSizeBytes)
            {
                segment.Preallocate(options.SegmentSizeBytes);
            }

            // Makes everything before the tail durable (a process that crashed leaves written but
            // unflushed bytes in the page cache): the log then starts with its durable position at
            // the tail, and the synced word of the next frame may claim it.
            segment.Flush();
            // A recycled segment gets a mark at every open that leaves it room, records or not:
            // frames of this life a crash left after the tail but this open did not cut (a lone
            // frame past a lost piece) chained from the crc at the tail; the mark moves the chain
            // on, so no later append, however identical to what was lost, can link them back.
            // Without room no record can follow in this segment (the next append cuts).
            if (needsSyncMark || (tag.IsTagged && tailOffset + WalFormat.SyncMarkFrameSizeBytes <= segment.Length - WalFormat.SegmentTrailerSizeBytes))
            {
                // Records a crash left unproven (no later frame claims them) are proven now, so
                // damage to them after this open is refused. After the flush above, never before it:
                // the mark must not reach the disk ahead of the bytes it claims.
                if (tailOffset + WalFormat.SyncMarkFrameSizeBytes > segment.Length - WalFormat.SegmentTrailerSizeBytes)
                {
                    throw new InvariantViolationException("Every segment keeps room for a sync mark before its trailer.");
                }

                byte[] mark = WalFormat.BuildSyncMarkFrame(tailOffset, tailCrc, tag, out tailCrc);
                segment.Write(tailOffset, mark);
                segment.Flush();
                tailOffset += mark.Length;
            }

            return new RecoveredLog(segments, segment, tailOffset, tailCrc, tag, lastIndex, repair);
        }
        catch
        {
            segment.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Creates a segment the crash-safe way: a temporary file gets the header record and its full
    /// size and is flushed, and only then renamed to its segment name and the directory synced. A
    /// segment that has a name therefore always has a durable header. A recycled cut
    /// (<see cref="SegmentCut.Recycled"/>) takes the spare its cut reserved: its old bytes stay
    /// (blocks written, so flushes into them change no extent), its header and a zero trailer are
    /// written over them and flushed before it is named (WalSpareSegment says why this is safe).
    /// </summary>
    public static IStorageFile CreateSegment(IFileSystem fileSystem, string directory, WalOptions options, SegmentCut cut, WalSpareSegment? spare = null)
    {
        string path = Path.Combine(directory, WalFormat.SegmentFileName(cut.Sequence, cut.FirstIndex));
        string temporary = path + WalFormat.TempSuffix;
        if (cut.Recycled)
        {
            if (spare is null || !spare.TakeReserved(temporary))
            {
                throw new InvariantViolationException("A recycled cut takes the spare it reserved.");
            }

            using (var file = fileSystem.Open(temporary, FileOpenMode.OpenExisting))
            {
                long length = file.Length;
                if (length < WalFormat.SegmentHeaderFrameSizeBytes + WalFormat.SegmentReservedEndBytes)
                {
                    throw new InvariantViolationException("A spare segment is a whole segment long.");
                }

                file.Write(0, cut.HeaderFrame);
                // The old trailer named the old successor; a trailer is written only after the next segment exists.
                file.Write(length - WalFormat.SegmentTrailerSizeBytes, WalFormat.Zeros.AsSpan(0, WalFormat.SegmentTrailerSizeBytes));
                file.Flush();
            }
        }
        else
        {
            using var file = fileSystem.Open(temporary, FileOpenMode.OpenOrCreate);
            file.SetLength(0);
            file.Write(0, cut.HeaderFrame);
            file.Preallocate(options.SegmentSizeBytes);
            file.Flush();
        }

        fileSystem.Rename(temporary, path);
        fileSystem.SyncDirectory(directory);
        return fileSystem.Open(path, FileOpenMode.OpenExisting);
    }

    private static List<SegmentInfo> ListSegments(IFileSystem fileSystem, string directory)
    {
        var segments = new List<SegmentInfo>();
        bool deletedTemporary = false;
        foreach (string name in fileSystem.ListFiles(directory))
        {
            if (name.EndsWith(WalFormat.SegmentExtension + WalFormat.TempSuffix, StringComparison.Ordinal))
            {
                // A segment whose creation did not finish: it never had a name, so no record in it was ever acknowledged.
                fileSystem.DeleteFile(Path.Combine(directory, name));
                deletedTemporary = true;
            }
            else if (WalFormat.TryParseSegmentFileName(name, out long sequence, out ulong firstIndex))
            {
                segments.Add(new SegmentInfo(sequence, firstIndex, Path.Combine(directory, name)));
            }
        }

        if (deletedTemporary)
        {
            fileSystem.SyncDirectory(directory);
        }

        segments.Sort((a, b) => a.Sequence.CompareTo(b.Sequence));
        for (int i = 1; i < segments.Count; i++)
        {
            if (segments[i].Sequence != segments[i - 1].Sequence + 1)
            {
                throw new CorruptionException(segments[i].Path, 0, $"Segment sequence {segments[i - 1].Sequence + 1} is missing before this one; the log has a hole.");
            }
        }

        return segments;
    }

    /// <summary>
    /// The trailer (the last 16 bytes) of the last segment is written only after the next segment
    /// durably exists. If it names a successor, that segment was deleted or lost, and opening would
    /// silently shorten the log.
    /// </summary>
    private static void CheckNoSuccessorWasRecorded(IStorageFile segment, SegmentInfo info)
    {
        if (segment.Length < WalFormat.SegmentHeaderFrameSizeBytes + WalFormat.SegmentTrailerSizeBytes)
        {
            throw new CorruptionException(info.Path, 0, $"The segment is {segment.Length} bytes long, too short for its header and trailer.");
        }

        long trailerOffset = segment.Length - WalFormat.SegmentTrailerSizeBytes;
        var trailer = new byte[WalFormat.SegmentTrailerSizeBytes];
        int read = segment.Read(trailerOffset, trailer);
        if (read != trailer.Length)
        {
            throw new InvariantViolationException("A read inside the file's length returns every byte.");
        }

        switch (WalFormat.ReadSegmentTrailer(trailer, out ulong nextFirstIndex))
        {
            case SegmentTrailerState.Damaged:
                throw new CorruptionException(info.Path, trailerOffset, "The segment trailer is damaged (it is written whole or not at all, so a torn write cannot explain it).");
            case SegmentTrailerState.NamesNext:
                string missing = Path.Combine(Path.GetDirectoryName(info.Path)!, WalFormat.SegmentFileName(info.Sequence + 1, nextFirstIndex));
                throw new CorruptionException(missing, 0, $"The segment is missing: '{info.Path}' records (in its trailer at offset {trailerOffset}) that it was created, so records after the end of '{info.Path}' are lost. Restore the file; the log refuses to open shortened.");
        }
    }

    private static (long TailOffset, uint TailCrc, FrameTag Tag, ulong LastIndex, WalTailRepair? Repair, bool NeedsSyncMark) ScanLastSegment(IFileSystem fileSystem, IStorageFile segment, SegmentInfo info)
    {
        // The trailer is not part of the frames; it was checked by CheckNoSuccessorWasRecorded.
        using var scanner = new SegmentScanner(segment, segment.Length - WalFormat.SegmentTrailerSizeBytes);
        var tag = scanner.ReadHeader(info.Sequence, info.FirstIndex).Tag;
        ulong lastIndex = info.FirstIndex == 0 ? 0 : info.FirstIndex - 1;
        bool lastIsRecord = false;
        long provenDurable = WalFormat.SegmentHeaderFrameSizeBytes; // a named segment's header is durable
        ScanStatus status;
        while ((status = scanner.Next()) == ScanStatus.Frame)
        {
            lastIsRecord = scanner.Type != WalFormat.SegmentHeaderType;
            provenDurable = Math.Max(provenDurable, scanner.SyncedOffset);
            if (scanner.Index != 0)
            {
                lastIndex = scanner.Index;
            }
        }

        long cut = scanner.Offset;
        if (status == ScanStatus.Bad && !scanner.BadIsTornCompatible)
        {
            throw new CorruptionException(info.Path, cut, scanner.BadReason + " A torn write cannot explain it.");
        }

        uint tailCrc = scanner.Crc;
        // Where to look for this life's bytes after the cut: over zeros, up to the last non-zero
        // byte; in a recycled segment, whose previous life lies past the tail, the whole rest.
        bool recycled = scanner.IsRecycled;
        long searchEnd = recycled ? scanner.Limit : scanner.EndOfNonZeroBytes(cut);
        if (searchEnd == cut)
        {
            return (cut, tailCrc, tag, lastIndex, null, lastIsRecord);
        }

        string reason = status == ScanStatus.Bad ? scanner.BadReason
            : recycled ? "Frames of this segment's life after the last valid one." : "Non-zero bytes after the last record.";
        // A torn write touches only bytes no flush had covered. A later genuine frame that claims a
        // flush covered the damage proves the damaged frame was durable: refuse, never cut it.
        if (scanner.TryFindSyncedClaimBeyond(cut, searchEnd, out long proofOffset, out long syncedOffset, out long genuineEnd))
        {
            throw new CorruptionException(info.Path, cut, $"{reason} A torn write cannot explain it: the frame at offset {proofOffset} was appended after a flush had made the log durable up to offset {syncedOffset}, which covers this frame.");
        }

        // Over zeros the torn tail is every non-zero byte. In a recycled segment it is this life's
        // frames: genuine ones found after the cut, and a damaged one at the cut whose word decodes
        // under the tag (a stale word decodes by chance, 2^-16: saving its stale bytes costs a side
        // file; taking a damaged record of this life for stale bytes would cut it unsaved).
        long end = recycled ? Math.Max(genuineEnd, status == ScanStatus.Bad ? scanner.BadFrameEnd : cut) : searchEnd;
        if (end == cut)
        {
            return (cut, tailCrc, tag, lastIndex, null, lastIsRecord);
        }

        string sidePath = SaveTornTail(fileSystem, segment, info, cut, end);
        for (long offset = cut; offset < end; offset += WalFormat.Zeros.Length)
        {
            segment.Write(offset, WalFormat.Zeros.AsSpan(0, (int)Math.Min(WalFormat.Zeros.Length, end - offset)));
        }

        segment.Flush();
        if (provenDurable > cut)
        {
            throw new InvariantViolationException("A valid frame never claims more than the offsets before it.");
        }

        return (cut, tailCrc, tag, lastIndex, new WalTailRepair(info.Path, cut, end - cut, sidePath, reason, provenDurable), lastIsRecord);
    }

    /// <summary>Copies [cut, end) of the segment to a new side file and makes it durable before anything is zeroed.</summary>
    private static string SaveTornTail(IFileSystem fileSystem, IStorageFile segment, SegmentInfo info, long cut, long end)
    {
        string directory = Path.GetDirectoryName(info.Path)!;
        string basePath = info.Path + string.Create(CultureInfo.InvariantCulture, $".{cut:x16}") + WalFormat.TornSuffix;
        string sidePath = basePath;
        for (int attempt = 1; fileSystem.FileExists(sidePath); attempt++)
        {
            // An earlier open cut here too and crashed before its zeros were durable: keep both copies.
            if (attempt >= 1000)
            {
                throw new InvariantViolationException("Too many torn-tail side files for one offset.");
            }

            sidePath = basePath + "." + attempt.ToString(CultureInfo.InvariantCulture);
        }

        var chunk = new byte[(int)Math.Min(CopyChunkBytes, end - cut)];
        using (var side = fileSystem.Open(sidePath, FileOpenMode.CreateNew))
        {
            for (long offset = cut; offset < end; offset += chunk.Length)
            {
                int count = (int)Math.Min(chunk.Length, end - offset);
                int read = segment.Read(offset, chunk.AsSpan(0, count));
                if (read != count)
                {
                    throw new InvariantViolationException("The segment shrank while its torn tail was being saved.");
                }

                side.Write(offset - cut, chunk.AsSpan(0, count));
            }

            side.Flush();
        }

        fileSystem.SyncDirectory(directory);
        return sidePath;
    }
}
