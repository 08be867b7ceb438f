using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace EmbeddedRaft.Storage.Wal;

/// <summary>
/// Settings of a <see cref="WriteAheadLog"/>, validated when constructed. Immutable and safe to share.
/// </summary>
public sealed class WalOptions
{
    /// <summary>The default segment size: 64 MiB, as etcd.</summary>
    public const long DefaultSegmentSizeBytes = 64L * 1024 * 1024;

    /// <summary>The default largest payload: 16 MiB, or less when the segment cannot hold it.</summary>
    public const int DefaultMaxRecordSizeBytes = 16 * 1024 * 1024;

    /// <summary>The default size of one group-commit buffer: 1 MiB.</summary>
    public const int DefaultWriteBufferSizeBytes = 1024 * 1024;

    /// <summary>The smallest segment size accepted: 4 KiB.</summary>
    public const long MinSegmentSizeBytes = 4096;

    /// <summary>The largest segment size accepted: 16 GiB (a frame records synced offsets as a 32-bit count of 8-byte words).</summary>
    public const long MaxSegmentSizeBytes = WalFormat.MaxSegmentSizeBytes;

    /// <summary>The options used when none are given.</summary>
    public static WalOptions Default { get; } = new();

    /// <summary>Creates validated options.</summary>
    /// <param name="segmentSizeBytes">Size every segment file is preallocated to; a new segment is cut when the next record does not fit. A multiple of 512, from <see cref="MinSegmentSizeBytes"/> to <see cref="MaxSegmentSizeBytes"/>.</param>
    /// <param name="maxRecordSizeBytes">Largest payload <see cref="WriteAheadLog.AppendAsync"/> accepts. Null: <see cref="DefaultMaxRecordSizeBytes"/>, or the largest that fits an empty segment when that is smaller. A frame must fit in one segment after its header record.</param>
    /// <param name="writeBufferSizeBytes">Capacity of one group-commit buffer; a record larger than it gets a buffer of its own. At least 4 KiB.</param>
    /// <param name="maxBufferedBytes">Bytes of appended records that may wait in memory for the writer before appenders wait too (back-pressure). At least <paramref name="writeBufferSizeBytes"/>; null means four buffers.</param>
    /// <param name="logger">Where repairs are reported: a torn tail cut by <see cref="WriteAheadLog.Open"/> is logged at <see cref="LogLevel.Warning"/> (as well as in <see cref="WriteAheadLog.TailRepair"/>). Null: nowhere (<see cref="NullLogger.Instance"/>).</param>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of range, or a record of <paramref name="maxRecordSizeBytes"/> would not fit in a segment.</exception>
    public WalOptions(long segmentSizeBytes = DefaultSegmentSizeBytes, int? maxRecordSizeBytes = null, int writeBufferSizeBytes = DefaultWriteBufferSizeBytes, long? maxBufferedBytes = null, ILogger? logger = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(segmentSizeBytes, MinSegmentSizeBytes);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(segmentSizeBytes, MaxSegmentSizeBytes);
        if (segmentSizeBytes % WalFormat.SectorSizeBytes != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(segmentSizeBytes), segmentSizeBytes, "The segment size must be a multiple of 512 bytes.");
        }

        // A record must leave room for the sync mark and the trailer at the segment's end.
        long largestFitting = segmentSizeBytes - WalFormat.SegmentHeaderFrameSizeBytes - WalFormat.FrameHeaderSizeBytes - WalFormat.SegmentReservedEndBytes;
        largestFitting -= largestFitting % WalFormat.Alignment;
        int maxRecord = maxRecordSizeBytes ?? (int)Math.Min(DefaultMaxRecordSizeBytes, largestFitting);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxRecord, nameof(maxRecordSizeBytes));
        if (maxRecord > largestFitting)
        {
            throw new ArgumentOutOfRangeException(nameof(maxRecordSizeBytes), maxRecord, $"A record of this size does not fit in a {segmentSizeBytes}-byte segment after its header (at most {largestFitting} bytes).");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(writeBufferSizeBytes, 4096);
        long maxBuffered = maxBufferedBytes ?? 4L * writeBufferSizeBytes;
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBuffered, writeBufferSizeBytes, nameof(maxBufferedBytes));

        SegmentSizeBytes = segmentSizeBytes;
        MaxRecordSizeBytes = maxRecord;
        WriteBufferSizeBytes = writeBufferSizeBytes;
        MaxBufferedBytes = maxBuffered;
        Logger = logger ?? NullLogger.Instance;
    }

    /// <summary>Size every segment file is preallocated to.</summary>
    public long SegmentSizeBytes { get; }

    /// <summary>Largest payload an append accepts.</summary>
    public int MaxRecordSizeBytes { get; }

    /// <summary>Capacity of one group-commit buffer.</summary>
    public int WriteBufferSizeBytes { get; }

    /// <summary>Bytes that may wait in memory for the writer before appenders are held back.</summary>
    public long MaxBufferedBytes { get; }

    /// <summary>Where repairs are reported (a warning each).</summary>
    public ILogger Logger { get; }
}
