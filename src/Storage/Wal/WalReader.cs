using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Storage.Wal;

/// <summary>
/// Streams records of a <see cref="WriteAheadLog"/> in log order, segment after segment, through
/// one buffer (memory bounded by the largest record), checking every frame and the CRC chain
/// across segments. Obtain one from <see cref="WriteAheadLog.ReadFrom(ulong)"/>. Not thread-safe;
/// any number of readers may run beside each other and beside the appenders.
/// </summary>
public sealed class WalReader : IDisposable
{
    private readonly IFileSystem _fileSystem;
    private readonly List<SegmentInfo> _segments;
    private readonly WalPosition _end;
    private readonly WalPosition _skipTo;
    private int _segmentIndex = -1;
    private IStorageFile? _file;
    private SegmentScanner? _scanner;
    private uint? _previousSegmentCrc;
    private string? _previousSegmentPath;
    private long _previousSegmentEnd;
    private string _previousSegmentEndReason = "";
    private bool _disposed;
    // Called once at disposal: the log counts open readers (no released segment is reused while one is open).
    private readonly Action? _onDispose;

    internal WalReader(IFileSystem fileSystem, List<SegmentInfo> segments, WalPosition end, WalPosition skipTo, Action? onDispose = null)
    {
        _onDispose = onDispose;
        _fileSystem = fileSystem;
        _segments = segments;
        _end = end;
        _skipTo = skipTo;
    }

    /// <summary>
    /// Reads the next record. Returns false at the end (the log's written end when the reader was
    /// opened). The record's payload is valid until the next call.
    /// </summary>
    /// <exception cref="CorruptionException">A frame fails a check, a segment does not continue the chain of the one before, or a segment ends before the log's end. Names the file and offset.</exception>
    /// <exception cref="ObjectDisposedException">The reader was disposed.</exception>
    public bool TryReadNext(out WalRecord record)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        while (true)
        {
            if (_scanner is null && !OpenNextSegment())
            {
                record = default;
                return false;
            }

            var scanner = _scanner!;
            var status = scanner.Next();
            if (status == ScanStatus.Frame)
            {
                var position = new WalPosition(_segments[_segmentIndex].Sequence, scanner.FrameOffset);
                if (position < _skipTo || scanner.Type == WalFormat.SegmentHeaderType)
                {
                    continue; // before the start, or a sync mark (the log's own frame, not a record)
                }

                record = new WalRecord(scanner.Type, scanner.Index, scanner.Payload, position);
                return true;
            }

            bool isLast = _segments[_segmentIndex].Sequence == _end.Sequence;
            if (status == ScanStatus.Bad && !(scanner.IsRecycled && !isLast && scanner.BadIsTornCompatible))
            {
                // Open repaired the tail of the last segment; anything invalid a reader meets is damage.
                throw new CorruptionException(scanner.Path, scanner.Offset, scanner.BadReason);
            }

            // A finished recycled segment's frames end where its previous life's bytes begin: at a
            // word or frame that fails this life's checks. Whether that is its true end, the next
            // segment's header says (its previous crc must be the crc reached here).
            if (isLast && scanner.Offset != _end.Offset)
            {
                throw new CorruptionException(scanner.Path, scanner.Offset, $"The records end here, before the log's end at offset {_end.Offset}.");
            }

            _previousSegmentCrc = scanner.Crc;
            _previousSegmentPath = scanner.Path;
            _previousSegmentEnd = scanner.Offset;
            _previousSegmentEndReason = status == ScanStatus.Bad ? " " + scanner.BadReason : "";
            CloseSegment();
            if (isLast)
            {
                _segmentIndex = _segments.Count;
            }
        }
    }

    /// <summary>Releases the buffer and the open segment.</summary>
    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            CloseSegment();
            _onDispose?.Invoke();
        }
    }

    private bool OpenNextSegment()
    {
        if (_segmentIndex + 1 >= _segments.Count)
        {
            return false;
        }

        _segmentIndex++;
        var segment = _segments[_segmentIndex];
        if (segment.Sequence > _end.Sequence)
        {
            _segmentIndex = _segments.Count;
            return false;
        }

        _file = _fileSystem.Open(segment.Path, FileOpenMode.ReadOnly);
        // A finished segment's frames end before its trailer (the last bytes of the file).
        long limit = segment.Sequence == _end.Sequence ? _end.Offset : _file.Length - WalFormat.SegmentTrailerSizeBytes;
        _scanner = new SegmentScanner(_file, limit);
        var header = _scanner.ReadHeader(segment.Sequence, segment.FirstIndex);
        if (_previousSegmentCrc is uint previous && header.PreviousCrc != previous)
        {
            throw new CorruptionException(_previousSegmentPath!, _previousSegmentEnd, $"The next segment '{segment.Path}' does not continue the crc chain from here (it expects {header.PreviousCrc:x8}, this segment ends at {previous:x8}): records at the end of this segment are missing or the segment was replaced.{_previousSegmentEndReason}");
        }

        return true;
    }

    private void CloseSegment()
    {
        _scanner?.Dispose();
        _scanner = null;
        _file?.Dispose();
        _file = null;
    }
}
