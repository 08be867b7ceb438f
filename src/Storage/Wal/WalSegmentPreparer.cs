using EmbeddedRaft.Storage.IO;
using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Storage.Wal;

/// <summary>
/// Prepares the write-ahead log's next segment file ahead of need, on its own background thread:
/// a file of the segment size whose every byte was written with zeros and flushed, so that the
/// appends of the segment it becomes land in written blocks. Used only when the file system says
/// preallocated space is unwritten (<see cref="IFileSystem.PreallocatedSpaceIsUnwritten"/>): there
/// the flush after an append into fresh preallocated space also writes the file's block map (on
/// ext4 without a journal, the inode, synchronously), a cost now paid once per segment off the
/// append path, at the price of writing every segment twice.
/// </summary>
/// <remarks>
/// <para>The spare is named <see cref="SpareFileName"/>, a temporary name that
/// <see cref="WalRecovery"/> deletes at open: a spare never holds a record, whatever a crash
/// interrupted (zeros being written, or the header of the segment it was becoming). It becomes a
/// segment through <see cref="WalRecovery.CreateSegmentFromSpare"/>, with the same steps and
/// crash guarantees as a segment created from nothing (a durable header before the name).</para>
/// <para>Pace: the zeros follow the log's own writes in its current segment (at most
/// <see cref="LeadBytes"/> ahead), and after a segment that filled faster than
/// <see cref="MaxZeroFillBytesPerSecond"/> the preparer pauses until the next cut (that next segment
/// is then preallocated, as without a preparer): the zeros pay where flushes are small and many.</para>
/// <para>Invariant: a spare handed out by <see cref="TryTakeSpare"/> is exactly the segment size
/// long, every byte zero, and durable (flushed). A failure to prepare one is not a failure of the
/// log: the log goes on cutting segments the ordinary way (preallocated) and this preparer stops.</para>
/// <para>Thread-safety: <see cref="TryTakeSpare"/> and <see cref="Stop"/> may be called from any thread.</para>
/// </remarks>
internal sealed class WalSegmentPreparer
{
    /// <summary>The spare's file name: ends with the temporary suffix of a segment, so an open deletes it.</summary>
    public const string SpareFileName = "spare" + WalFormat.SegmentExtension + WalFormat.TempSuffix;

    /// <summary>Zeros are written in pieces of this size, each handed to the device at once (write-back started), so the page cache holds few of them dirty.</summary>
    private const int PieceBytes = 1024 * 1024;

    /// <summary>
    /// How far the spare's zeros may run ahead of the log's own writes in its current segment. The
    /// zeros follow the log's pace instead of going out in one burst after each cut: a burst of a
    /// whole segment queues tens of MiB at the device ahead of the log's next flushes (measured:
    /// proposals' p99 up 3-4x at 1,024 in flight). At the cut the spare is complete.
    /// </summary>
    private const long LeadBytes = 8L * 1024 * 1024;

    /// <summary>
    /// Above this write rate (a segment filled faster than this) the next spare is not prepared:
    /// the zeros cost CPU in proportion to the bytes (measured: ~3 µs more CPU per 1 KiB proposal
    /// at 1,024 in flight, three nodes, and 0.82x the rate), while what they save is per flush
    /// (an inode write), and a fast log's flushes are few and large. Below it (flushes of a few
    /// KiB each, latency-bound) the zeros are cheap and every flush gains.
    /// </summary>
    private const double MaxZeroFillBytesPerSecond = 32.0 * 1024 * 1024;

    private static readonly ReadOnlyMemory<byte> s_zeros = new byte[1024 * 1024];

    private static readonly Action<ILogger, string, Exception?> s_logPreparationFailed =
        LoggerMessage.Define<string>(
            LogLevel.Warning,
            new EventId(2, "WalSegmentPreparationFailed"),
            "Write-ahead log '{Directory}': preparing the next segment filled with zeros failed; segments are created preallocated from now on (appends into them flush more slowly).");

    private readonly object _gate = new();
    private readonly IFileSystem _fileSystem;
    private readonly string _directory;
    private readonly long _segmentSizeBytes;
    private readonly ILogger _logger;
    private readonly Thread _thread;
    // Guarded by _gate.
    private IStorageFile? _ready;
    // True from TryTakeSpare until SpareTaken: the taken spare is still at SparePath, becoming a
    // segment, and the next one must not be started there (it would truncate it).
    private bool _taking;
    private bool _stopping;
    private bool _failed;
    // How far the log has written its current segment (reset at each cut).
    private long _consumed;
    // When the current segment was started (at open, or its cut), and whether the last segment
    // filled too fast for zeros to pay (MaxZeroFillBytesPerSecond): preparing then pauses until the next cut.
    private long _segmentStartedTimestamp = System.Diagnostics.Stopwatch.GetTimestamp();
    private bool _paused;
    // The log's offset at which the waiting preparer wants to hear of its progress; long.MaxValue
    // when it does not wait. Read without the lock on the log's write path (one volatile read).
    private long _wakeAt = long.MaxValue;

    /// <summary>Starts the thread, which prepares a first spare at once (paced by <paramref name="consumed"/>, how far the log has written its current segment at open).</summary>
    public WalSegmentPreparer(IFileSystem fileSystem, string directory, long segmentSizeBytes, long consumed, ILogger logger)
    {
        _consumed = consumed;
        _fileSystem = fileSystem;
        _directory = directory;
        _segmentSizeBytes = segmentSizeBytes;
        _logger = logger;
        SparePath = Path.Combine(directory, SpareFileName);
        _thread = new Thread(Run) { IsBackground = true, Name = "EmbeddedRaft WAL segment preparer" };
        _thread.UnsafeStart();
    }

    /// <summary>Where the spare is prepared.</summary>
    public string SparePath { get; }

    /// <summary>For tests: true when a spare is ready to be taken.</summary>
    public bool HasSpare
    {
        get
        {
            lock (_gate)
            {
                return _ready is not null;
            }
        }
    }

    /// <summary>For tests: true when preparation stopped after a failure.</summary>
    public bool Failed
    {
        get
        {
            lock (_gate)
            {
                return _failed;
            }
        }
    }

    /// <summary>
    /// Takes the prepared spare (open, at <see cref="SparePath"/>, zero-filled and durable) and
    /// starts preparing the next; null when none is ready (the caller creates a segment the ordinary way).
    /// </summary>
    /// <remarks>
    /// Called at every cut of the log (spare or not): the log's offsets restart in the new segment.
    /// A spare taken is still at <see cref="SparePath"/>: the caller must call <see cref="SpareTaken"/>
    /// once it is renamed away (or its cut failed), and only then is the next one started.
    /// </remarks>
    public IStorageFile? TryTakeSpare()
    {
        lock (_gate)
        {
            if (_taking)
            {
                throw new InvariantViolationException("A spare is taken by one cut at a time.");
            }

            var spare = _ready;
            _ready = null;
            _taking = spare is not null;
            _consumed = 0;
            long now = System.Diagnostics.Stopwatch.GetTimestamp();
            double seconds = System.Diagnostics.Stopwatch.GetElapsedTime(_segmentStartedTimestamp, now).TotalSeconds;
            _segmentStartedTimestamp = now;
            // Segments no larger than the lead are zeroed whatever the rate: a few MiB cost little.
            _paused = _segmentSizeBytes > LeadBytes && _segmentSizeBytes > MaxZeroFillBytesPerSecond * seconds;
            Monitor.PulseAll(_gate);
            return spare;
        }
    }

    /// <summary>The spare <see cref="TryTakeSpare"/> returned no longer lives at <see cref="SparePath"/> (renamed into a segment, or its cut failed): the next may be prepared.</summary>
    public void SpareTaken()
    {
        lock (_gate)
        {
            _taking = false;
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>The log has written its current segment up to <paramref name="offset"/> (called on its write path after each write; cheap unless the preparer waits for it).</summary>
    public void Consumed(long offset)
    {
        if (offset < Volatile.Read(ref _wakeAt))
        {
            return;
        }

        lock (_gate)
        {
            _consumed = Math.Max(_consumed, offset);
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>
    /// Writes zeros over [<paramref name="start"/>, <paramref name="end"/>) of an open file, in
    /// pieces whose write-back is started at once; the caller flushes. Before each piece it calls
    /// <paramref name="waitForTurn"/> with the piece's offset, and stops early (returns false) when that returns false.
    /// </summary>
    public static bool ZeroFill(IStorageFile file, long start, long end, Func<long, bool>? waitForTurn = null)
    {
        for (long offset = start; offset < end; offset += PieceBytes)
        {
            if (waitForTurn?.Invoke(offset) == false)
            {
                return false;
            }

            long pieceLength = Math.Min(PieceBytes, end - offset);
            file.Write(offset, s_zeros.Span[..(int)pieceLength]);
            file.StartWriteBack(offset, pieceLength);
        }

        return true;
    }

    /// <summary>Stops the thread (a spare being filled is abandoned) and deletes the spare file; never throws for the file system.</summary>
    public void Stop()
    {
        IStorageFile? ready;
        lock (_gate)
        {
            _stopping = true;
            Monitor.PulseAll(_gate);
        }

        _thread.Join();
        lock (_gate)
        {
            ready = _ready;
            _ready = null;
        }

        try
        {
            ready?.Dispose();
            _fileSystem.DeleteFile(SparePath);
        }
        catch (Exception)
        {
            // Best effort: the next open deletes a leftover spare (a temporary name) anyway.
        }
    }

    private void Run()
    {
        while (true)
        {
            lock (_gate)
            {
                while (!_stopping && (_ready is not null || _taking || _paused))
                {
                    Monitor.Wait(_gate);
                }

                if (_stopping)
                {
                    return;
                }
            }

            IStorageFile? file = null;
            try
            {
                file = _fileSystem.Open(SparePath, FileOpenMode.OpenOrCreate);
                // A spare taken earlier was renamed away, so this is a new file (or one a stopped
                // preparation left): start it empty, reserve the space, then write every byte.
                file.SetLength(0);
                file.Preallocate(_segmentSizeBytes);
                if (!ZeroFill(file, 0, _segmentSizeBytes, WaitForTurn))
                {
                    file.Dispose();
                    return;
                }

                file.Flush();

                if (file.Length != _segmentSizeBytes)
                {
                    throw new IOException($"The prepared segment '{SparePath}' is {file.Length} bytes long after zero-filling {_segmentSizeBytes}.");
                }

                lock (_gate)
                {
                    if (_stopping)
                    {
                        file.Dispose();
                        return;
                    }

                    _ready = file;
                }
            }
            catch (Exception e)
            {
                // Not the log's failure: appends never depended on this file. Stop preparing; the
                // log creates its segments preallocated, as without a preparer.
                file?.Dispose();
                lock (_gate)
                {
                    _failed = true;
                }

                s_logPreparationFailed(_logger, _directory, e);
                return;
            }
        }
    }

    /// <summary>Waits until the zeros may reach <paramref name="offset"/> (the log is within <see cref="LeadBytes"/> of it); false when stopping.</summary>
    private bool WaitForTurn(long offset)
    {
        lock (_gate)
        {
            while (!_stopping && (_paused || offset > _consumed + LeadBytes))
            {
                // Paused, only a cut or Stop (which pulse) can let it go on: the log need not report.
                Volatile.Write(ref _wakeAt, _paused ? long.MaxValue : offset - LeadBytes);
                Monitor.Wait(_gate);
            }

            Volatile.Write(ref _wakeAt, long.MaxValue);
            return !_stopping;
        }
    }
}
