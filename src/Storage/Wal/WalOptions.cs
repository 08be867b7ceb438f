using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace EmbeddedRaft.Storage.Wal;

/// <summary>
/// Settings of a <see cref="WriteAheadLog"/>. Each property checks its own range when set and
/// throws <see cref="ArgumentOutOfRangeException"/> whose <see cref="ArgumentException.ParamName"/>
/// is the property's name; rules between properties (a record must fit in a segment, the
/// back-pressure limit must hold one buffer) are checked by <see cref="WriteAheadLog.Open"/>, which
/// throws <see cref="ArgumentException"/> naming both options.
/// </summary>
/// <remarks>
/// An immutable record with a parameterless constructor and <c>init</c> accessors, so it binds from
/// Microsoft.Extensions.Configuration; vary it with <c>WalOptions.Default with { SegmentSizeBytes = ... }</c>.
/// Thread-safe to share.
/// </remarks>
public sealed record WalOptions
{
    /// <summary>The default <see cref="SegmentSizeBytes"/>: 64 MiB, as etcd.</summary>
    public const long DefaultSegmentSizeBytes = 64L * 1024 * 1024;

    /// <summary>The default largest payload: 16 MiB, or less when the segment cannot hold it.</summary>
    public const int DefaultMaxRecordSizeBytes = 16 * 1024 * 1024;

    /// <summary>The default <see cref="WriteBufferSizeBytes"/>: 1 MiB.</summary>
    public const int DefaultWriteBufferSizeBytes = 1024 * 1024;

    /// <summary>The smallest <see cref="WriteBufferSizeBytes"/> accepted: 4 KiB.</summary>
    public const int MinWriteBufferSizeBytes = 4096;

    /// <summary>The smallest segment size accepted: 4 KiB.</summary>
    public const long MinSegmentSizeBytes = 4096;

    /// <summary>The largest segment size accepted: 16 GiB (a frame records synced offsets as a 32-bit count of 8-byte words).</summary>
    public const long MaxSegmentSizeBytes = WalFormat.MaxSegmentSizeBytes;

    // Null when not set: the getters derive the value from the others, so "not set" keeps
    // following SegmentSizeBytes / WriteBufferSizeBytes in a `with` expression.
    private readonly int? _maxRecordSizeBytes;
    private readonly long? _maxBufferedBytes;

    /// <summary>Creates options with every default.</summary>
    public WalOptions()
    {
    }

    /// <summary>Every default: 64 MiB segments, 16 MiB records, 1 MiB buffers, four buffers of back-pressure, no logging.</summary>
    public static WalOptions Default { get; } = new();

    /// <summary>
    /// Size every segment file is preallocated to; a new segment is cut when the next record does
    /// not fit. A multiple of 512, from <see cref="MinSegmentSizeBytes"/> to <see cref="MaxSegmentSizeBytes"/>.
    /// Default <see cref="DefaultSegmentSizeBytes"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Out of range or not a multiple of 512 (ParamName "SegmentSizeBytes").</exception>
    public long SegmentSizeBytes
    {
        get;
        init
        {
            if (value is < MinSegmentSizeBytes or > MaxSegmentSizeBytes || value % WalFormat.SectorSizeBytes != 0)
            {
                throw new ArgumentOutOfRangeException(nameof(SegmentSizeBytes), value, $"{nameof(SegmentSizeBytes)} must be a multiple of {WalFormat.SectorSizeBytes} from {MinSegmentSizeBytes} to {MaxSegmentSizeBytes}.");
            }

            field = value;
        }
    } = DefaultSegmentSizeBytes;

    /// <summary>
    /// Largest payload <see cref="WriteAheadLog.AppendAsync"/> accepts. When not set:
    /// <see cref="DefaultMaxRecordSizeBytes"/>, or the largest payload that fits an empty segment of
    /// <see cref="SegmentSizeBytes"/> when that is smaller. When set, a frame of this payload must
    /// fit in one segment after its header record and before the room kept for the sync mark and
    /// the trailer (checked by <see cref="WriteAheadLog.Open"/>).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to 0 or less (ParamName "MaxRecordSizeBytes").</exception>
    public int MaxRecordSizeBytes
    {
        get => _maxRecordSizeBytes ?? (int)Math.Min(DefaultMaxRecordSizeBytes, LargestRecordFitting(SegmentSizeBytes));
        init
        {
            if (value < 1)
            {
                throw new ArgumentOutOfRangeException(nameof(MaxRecordSizeBytes), value, $"{nameof(MaxRecordSizeBytes)} must be at least 1 (and fit in a segment of {nameof(SegmentSizeBytes)}).");
            }

            _maxRecordSizeBytes = value;
        }
    }

    /// <summary>
    /// Capacity of one group-commit buffer; a record larger than it gets a buffer of its own. At
    /// least <see cref="MinWriteBufferSizeBytes"/>. Default <see cref="DefaultWriteBufferSizeBytes"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Below <see cref="MinWriteBufferSizeBytes"/> (ParamName "WriteBufferSizeBytes").</exception>
    public int WriteBufferSizeBytes
    {
        get;
        init => field = OptionChecks.AtLeast(value, MinWriteBufferSizeBytes, nameof(WriteBufferSizeBytes));
    } = DefaultWriteBufferSizeBytes;

    /// <summary>
    /// Bytes of appended records that may wait in memory for the writer before appenders wait too
    /// (back-pressure). When not set: four times <see cref="WriteBufferSizeBytes"/>. When set, at
    /// least <see cref="WriteBufferSizeBytes"/> (checked by <see cref="WriteAheadLog.Open"/>).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Set below <see cref="MinWriteBufferSizeBytes"/> (ParamName "MaxBufferedBytes").</exception>
    public long MaxBufferedBytes
    {
        get => _maxBufferedBytes ?? 4L * WriteBufferSizeBytes;
        init
        {
            if (value < MinWriteBufferSizeBytes)
            {
                throw new ArgumentOutOfRangeException(nameof(MaxBufferedBytes), value, $"{nameof(MaxBufferedBytes)} must be at least {MinWriteBufferSizeBytes} (and at least {nameof(WriteBufferSizeBytes)}).");
            }

            _maxBufferedBytes = value;
        }
    }

    /// <summary>
    /// Test-only seam (the whole-cluster simulator's slow disks): when set, every
    /// <see cref="WriteAheadLog.SyncAsync"/> awaits it before its flush, so a flush can take
    /// simulated time (a delay on a fake clock) while the rest of the process runs. Null (the
    /// default) leaves the sync path as it is: one null check.
    /// </summary>
    internal Func<ValueTask>? BeforeSync { get; init; }

    /// <summary>
    /// Which threads write and flush: <see cref="WalThreading.BackgroundThreads"/> (the default: a
    /// writer and a syncer thread overlap writing one group with flushing the previous one) or
    /// <see cref="WalThreading.CallerThread"/> (no background threads: every write and flush runs
    /// inside the synced append, sync, back-pressure drain or disposal that needs it, and ends before
    /// that call returns; for a deterministic simulator and single-threaded hosts). Both give the same
    /// durability contract and the same bytes on disk; see docs/architecture.md, "Write-ahead log".
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Not a defined value (ParamName "Threading").</exception>
    public WalThreading Threading
    {
        get;
        init => field = OptionChecks.Defined(value, nameof(Threading));
    }

    /// <summary>
    /// Where repairs are reported: a torn tail cut by <see cref="WriteAheadLog.Open"/> is logged at
    /// <see cref="LogLevel.Warning"/> (as well as in <see cref="WriteAheadLog.TailRepair"/>).
    /// Default: nowhere (<see cref="NullLogger.Instance"/>); null is refused.
    /// </summary>
    /// <exception cref="ArgumentNullException">Set to null (ParamName "Logger").</exception>
    public ILogger Logger
    {
        get;
        init => field = OptionChecks.NotNull(value, nameof(Logger));
    } = NullLogger.Instance;

    /// <summary>Checks the rules between options; called by <see cref="WriteAheadLog.Open"/>.</summary>
    /// <exception cref="ArgumentException">A record of <see cref="MaxRecordSizeBytes"/> does not fit in a segment, or <see cref="MaxBufferedBytes"/> is below <see cref="WriteBufferSizeBytes"/>.</exception>
    internal void Validate()
    {
        long largestFitting = LargestRecordFitting(SegmentSizeBytes);
        if (MaxRecordSizeBytes > largestFitting)
        {
            throw new ArgumentException($"{nameof(MaxRecordSizeBytes)} ({MaxRecordSizeBytes}) does not fit in a segment of {nameof(SegmentSizeBytes)} ({SegmentSizeBytes}) after its header: at most {largestFitting} bytes.", nameof(MaxRecordSizeBytes));
        }

        if (MaxBufferedBytes < WriteBufferSizeBytes)
        {
            throw new ArgumentException($"{nameof(MaxBufferedBytes)} ({MaxBufferedBytes}) must be at least {nameof(WriteBufferSizeBytes)} ({WriteBufferSizeBytes}).", nameof(MaxBufferedBytes));
        }
    }

    // A record must leave room for the segment's header frame, its own frame header, and the sync
    // mark and trailer at the segment's end; frames are aligned.
    private static long LargestRecordFitting(long segmentSizeBytes)
    {
        long largest = segmentSizeBytes - WalFormat.SegmentHeaderFrameSizeBytes - WalFormat.FrameHeaderSizeBytes - WalFormat.SegmentReservedEndBytes;
        return largest - (largest % WalFormat.Alignment);
    }
}
