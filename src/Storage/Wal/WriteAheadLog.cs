using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using EmbeddedRaft.Storage.IO;
using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Storage.Wal;

/// <summary>
/// A segmented, group-committing write-ahead log of opaque records (a type byte, an optional
/// index, a payload), in the manner of etcd's <c>wal</c> package. The format is in
/// docs/formats.md, "Write-ahead log".
/// </summary>
/// <remarks>
/// <para>Appending. <see cref="AppendAsync"/> copies the record once, into a pooled group-commit
/// buffer, and chains its CRC-32C; whole buffers are written with one (gather) write and made
/// durable with one flush, however many appenders they carry. A synced append that finds no write
/// in progress, when the last group carried at most one waiter, performs that write and flush
/// itself, on its own thread, and completes synchronously (no thread hand-off); appends that
/// arrive meanwhile, and every append under concurrent load, are written together by a dedicated
/// writer thread while a syncer thread flushes the group before them (writing and flushing
/// overlap); a large group's completions go to the thread pool in one work item per processor. A
/// synced append completes when its record is durable; an unsynced one completes at once and
/// becomes durable with the next synced append, <see cref="SyncAsync"/>, or disposal (a crash
/// before then may lose it, and only it and later records). Records are durable in append
/// order: the log after any crash is a prefix of the records appended.</para>
/// <para>Segments. Files named <c>%016x-%016x.wal</c> (sequence, first index), preallocated to
/// <see cref="WalOptions.SegmentSizeBytes"/>. A new segment is cut when the next record does not
/// fit; its first index is that record's index (or, when it has none, the last index + 1).
/// <see cref="ReleaseBefore"/> deletes old segments once a snapshot covers them.</para>
/// <para>Thread-safety. Every member may be called from any thread concurrently. Records are
/// ordered by the order in which their <see cref="AppendAsync"/> calls take the log's lock.
/// One instance per directory: <see cref="Open"/> takes an exclusive lock on it.</para>
/// <para>Failure. If a write or flush fails, the log stops: waiting appends fail with that
/// exception and later calls throw an <see cref="IOException"/>. Dispose and reopen it; opening
/// repairs what the failure left.</para>
/// </remarks>
public sealed class WriteAheadLog : IAsyncDisposable, IDisposable
{
    private static readonly Action<ILogger, string, long, long, string, string, long, Exception?> s_logTailRepaired =
        LoggerMessage.Define<string, long, long, string, string, long>(
            LogLevel.Warning,
            new EventId(1, "WalTailRepaired"),
            "Write-ahead log '{SegmentPath}': cut a torn tail at offset {Offset} ({LengthBytes} bytes, kept in '{SideFilePath}'): {Reason} Every byte before offset {ProvenDurableOffset} was proven durable and is kept.");

    private readonly object _lock = new();
    private readonly IFileSystem _fileSystem;
    private readonly string _directory;
    private readonly WalOptions _options;
    private readonly IDisposable _directoryLock;
    private readonly Thread _writerThread;
    private readonly Thread _syncerThread;
    private readonly TaskCompletionSource _writerExited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ConcurrentQueue<WalAppendWaiter> _waiterPool = new();
    private readonly ConcurrentQueue<WalCompletionShare> _completionSharePool = new();
    private readonly object _releaseGate = new();

    // ---- Guarded by _lock: the appenders' view of the tail. ----
    // Invariant: _active.Sequence == _tailSequence and _active.EndOffset == _tailOffset.
    private readonly List<SegmentInfo> _segments;
    private readonly Queue<WalBatch> _sealed = new();
    private readonly Stack<WalBatch> _batchPool = new();
    private WalBatch _active;
    private long _tailSequence;
    private long _tailOffset;
    private uint _tailCrc;
    private ulong _lastIndex;
    // True when a record was appended after the last frame that proves it durable (a sync mark):
    // a clean close then appends a sync mark (docs/formats.md, "Open: torn tail or corruption").
    // False at open: Open leaves every recovered record proven.
    private bool _needsSyncMark;
    private long _bufferedBytes;
    private bool _drainRequested;
    private TaskCompletionSource? _spaceAvailable;
    private WalPosition _writtenEnd;
    private WalPosition _durableEnd;
    private Exception? _failure;
    private bool _closing;
    private bool _disposed;
    private bool _writerWaiting;
    private bool _inlineWriting;
    private TaskCompletionSource? _writerIdle;
    private int _lastGroupWaiters;
    private readonly Queue<WalAppendWaiter> _awaitingSync = new();
    private bool _syncRequested;
    private bool _syncing;
    private bool _syncerWaiting;
    private bool _cutting;
    private bool _finalSyncRequested;
    private bool _writerDone;
    private bool _syncerExited;
    private bool _writerStarted;
    private bool _syncerStarted;

    // ---- Owned by whoever writes: the writer thread, or an appender writing inline. ----
    // Invariant: at most one of them at a time. An appender writes inline only while the writer
    // and syncer threads wait (_writerWaiting, _syncerWaiting), and neither leaves its wait while
    // _inlineWriting; both are decided under _lock, which also publishes these fields between them.
    // _segmentFile is the exception the syncer shares: it reads it under _lock to flush it, and a
    // cut replaces it under _lock only while the syncer is not flushing (_cutting).
    private IStorageFile _segmentFile;
    private readonly List<ReadOnlyMemory<byte>> _gather = [];
    private readonly List<WalBatch> _work = [];
    private readonly List<WalAppendWaiter> _completions = [];

    // ---- Owned by the syncer thread. ----
    private readonly List<WalAppendWaiter> _syncCompletions = [];

    private WriteAheadLog(IFileSystem fileSystem, string directory, WalOptions options, IDisposable directoryLock, RecoveredLog recovered)
    {
        _fileSystem = fileSystem;
        _directory = directory;
        _options = options;
        _directoryLock = directoryLock;
        _segments = recovered.Segments;
        _segmentFile = recovered.LastSegment;
        _tailSequence = _segments[^1].Sequence;
        _tailOffset = recovered.TailOffset;
        _tailCrc = recovered.TailCrc;
        _lastIndex = recovered.LastIndex;
        _writtenEnd = _durableEnd = new WalPosition(_tailSequence, _tailOffset);
        TailRepair = recovered.Repair;
        _active = RentBatchUnsynchronized(_tailSequence, _tailOffset, options.WriteBufferSizeBytes);
        _writerThread = new Thread(RunWriter) { IsBackground = true, Name = "EmbeddedRaft WAL writer" };
        _syncerThread = new Thread(RunSyncer) { IsBackground = true, Name = "EmbeddedRaft WAL syncer" };
        _writerThread.UnsafeStart();
        _syncerThread.UnsafeStart();
        // Open returns an idle log: a first lone append commits inline, as every later one would.
        lock (_lock)
        {
            while (!(_writerStarted && _syncerStarted))
            {
                Monitor.Wait(_lock);
            }
        }
    }

    /// <summary>The directory holding the segments.</summary>
    public string Directory => _directory;

    /// <summary>What <see cref="Open"/> cut from a torn tail (file, offset, bytes cut, side file, reason, and how far the log was proven durable), or null when the log ended cleanly. Also logged as a warning through <see cref="WalOptions.Logger"/>.</summary>
    public WalTailRepair? TailRepair { get; }

    /// <summary>The index of the last record appended with a non-zero index (in append order, so it can go down after Raft truncates its log).</summary>
    public ulong LastIndex
    {
        get
        {
            lock (_lock)
            {
                return _lastIndex;
            }
        }
    }

    /// <summary>Where the next record will go.</summary>
    public WalPosition EndPosition
    {
        get
        {
            lock (_lock)
            {
                return new WalPosition(_tailSequence, _tailOffset);
            }
        }
    }

    /// <summary>Every record before this position is durable.</summary>
    public WalPosition DurablePosition
    {
        get
        {
            lock (_lock)
            {
                return _durableEnd;
            }
        }
    }

    /// <summary>The segment files, oldest first (the last is the one being appended to).</summary>
    public IReadOnlyList<string> SegmentPaths
    {
        get
        {
            lock (_lock)
            {
                return _segments.Where(s => s.Sequence <= _writtenEnd.Sequence).Select(s => s.Path).ToList();
            }
        }
    }

    /// <summary>
    /// Opens the log in <paramref name="directory"/>, creating the directory and a first segment when
    /// there are none. Checks every segment's header and scans the last segment to its end,
    /// repairing a torn tail (see <see cref="TailRepair"/>).
    /// </summary>
    /// <exception cref="StorageLockedException">Another open log (in this process or another) holds the directory.</exception>
    /// <exception cref="CorruptionException">A segment is missing (a hole in the sequence, or the last one, whose predecessor's trailer names it: <see cref="CorruptionException.Path"/> is the missing file), a header is damaged, or the last segment holds damage a torn write cannot explain (including damage a later frame proves was durable). Nothing is repaired then.</exception>
    /// <exception cref="NotSupportedException">The log was written in format version 1 by a pre-release build; it is not converted.</exception>
    /// <exception cref="IOException"><paramref name="directory"/> is an existing regular file, or the file system failed.</exception>
    public static WriteAheadLog Open(IFileSystem fileSystem, string directory, WalOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(fileSystem);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        options ??= WalOptions.Default;
        if (fileSystem.FileExists(directory))
        {
            throw new IOException($"Cannot open a write-ahead log in '{directory}': it is a regular file, not a directory.");
        }

        fileSystem.CreateDirectory(directory);
        var directoryLock = fileSystem.AcquireExclusiveLock(Path.Combine(directory, WalFormat.LockFileName));
        try
        {
            var recovered = WalRecovery.Recover(fileSystem, directory, options);
            if (recovered.Repair is { } repair)
            {
                s_logTailRepaired(options.Logger, repair.SegmentPath, repair.Offset, repair.LengthBytes, repair.SideFilePath, repair.Reason, repair.ProvenDurableOffset, null);
            }

            return new WriteAheadLog(fileSystem, directory, options, directoryLock, recovered);
        }
        catch
        {
            directoryLock.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Appends a record. With <paramref name="sync"/> (the default) the returned task completes when
    /// the record and every record before it are durable; without, it completes at once and the
    /// record becomes durable with a later sync. Concurrent synced appends share one write and one flush.
    /// </summary>
    /// <param name="recordType">The caller's record type, 1–255 (0 is reserved for the log's segment headers).</param>
    /// <param name="payload">The bytes; copied once before this method returns, so the caller may reuse the buffer at once.</param>
    /// <param name="index">The record's index (a Raft index) or 0 for none; names the segment a record starts and lets readers start from an index.</param>
    /// <param name="sync">Whether to wait for durability.</param>
    /// <param name="cancellationToken">Observed only before the record is accepted (while waiting for buffer space); an accepted record is written regardless.</param>
    /// <returns>Where the record was placed.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="recordType"/> is 0 or the payload exceeds <see cref="WalOptions.MaxRecordSizeBytes"/>.</exception>
    /// <exception cref="ObjectDisposedException">The log was disposed.</exception>
    /// <exception cref="IOException">The log stopped after a failed write or flush. A synced append whose own write or flush fails throws (or faults its task with) the file system's exception; the record may or may not be durable then, and the log accepts nothing more until reopened.</exception>
    public ValueTask<WalPosition> AppendAsync(byte recordType, ReadOnlyMemory<byte> payload, ulong index = 0, bool sync = true, CancellationToken cancellationToken = default)
    {
        if (recordType == WalFormat.SegmentHeaderType)
        {
            ThrowHelper.ThrowReservedRecordType(nameof(recordType));
        }

        if (payload.Length > _options.MaxRecordSizeBytes)
        {
            ThrowHelper.ThrowRecordTooLarge(nameof(payload), payload.Length, _options.MaxRecordSizeBytes);
        }

        cancellationToken.ThrowIfCancellationRequested();
        int frameSize = WalFormat.FrameSize(payload.Length);
        WalPosition position = default;
        bool hasSpace;
        lock (_lock)
        {
            ThrowIfUnusableUnsynchronized();
            hasSpace = _bufferedBytes == 0 || _bufferedBytes + frameSize <= _options.MaxBufferedBytes;
            if (hasSpace)
            {
                position = AppendFrameUnsynchronized(recordType, payload.Span, index);
                if (!sync)
                {
                    return new ValueTask<WalPosition>(position);
                }

                if (!TryBeginInlineWriteUnsynchronized())
                {
                    return WaitForDurableUnsynchronized(position);
                }
            }
        }

        if (hasSpace)
        {
            // Fast path: nobody else is writing, so this appender commits its own group, synchronously.
            WriteInline();
            return new ValueTask<WalPosition>(position);
        }

        // Back-pressure: the writer is behind by MaxBufferedBytes; wait for it (rare, allocates).
        return AppendWhenSpaceAsync(recordType, payload, index, sync, cancellationToken);
    }

    /// <summary>Completes when every record appended before the call is durable.</summary>
    /// <exception cref="ObjectDisposedException">The log was disposed.</exception>
    /// <exception cref="IOException">The log stopped after a failed write or flush.</exception>
    public ValueTask SyncAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_lock)
        {
            ThrowIfUnusableUnsynchronized();
            if (_durableEnd == new WalPosition(_tailSequence, _tailOffset))
            {
                return ValueTask.CompletedTask;
            }

            if (!TryBeginInlineWriteUnsynchronized())
            {
                var waiter = RentWaiter(new WalPosition(_tailSequence, _tailOffset));
                _active.Waiters.Add(waiter);
                _active.NeedsSync = true;
                WakeWriterUnsynchronized();
                return new ValueTask(waiter, waiter.Version);
            }
        }

        WriteInline();
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Opens a reader that streams, in log order, every record from the start of the newest segment
    /// whose first index is at most <paramref name="index"/> (the oldest segment when none is) up
    /// to the records written when the reader was opened. Records of that segment before
    /// <paramref name="index"/> are included: filter by <see cref="WalRecord.Index"/>. Unsynced
    /// records still in memory are not seen; call <see cref="SyncAsync"/> first to include them.
    /// </summary>
    /// <remarks>The reader verifies every frame and the CRC chain and throws <see cref="CorruptionException"/> at the first damage. Do not release the segments it reads while it runs.</remarks>
    public WalReader ReadFrom(ulong index)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var visible = VisibleSegmentsUnsynchronized();
            int start = 0;
            for (int i = visible.Count - 1; i >= 0; i--)
            {
                if (visible[i].FirstIndex <= index)
                {
                    start = i;
                    break;
                }
            }

            return new WalReader(_fileSystem, visible.GetRange(start, visible.Count - start), _writtenEnd, new WalPosition(visible[start].Sequence, 0));
        }
    }

    /// <summary>Opens a reader that streams every record from <paramref name="position"/> (a position an append returned) to the records written when the reader was opened.</summary>
    /// <exception cref="ArgumentOutOfRangeException">No segment with that sequence exists (released, or not yet written).</exception>
    public WalReader ReadFrom(WalPosition position)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var visible = VisibleSegmentsUnsynchronized();
            int start = visible.FindIndex(s => s.Sequence == position.Sequence);
            if (start < 0 || position > _writtenEnd)
            {
                throw new ArgumentOutOfRangeException(nameof(position), position, "No written segment holds this position.");
            }

            return new WalReader(_fileSystem, visible.GetRange(start, visible.Count - start), _writtenEnd, position);
        }
    }

    /// <summary>
    /// Deletes the segments wholly before <paramref name="index"/>: every segment older than the
    /// newest one whose first index is at most <paramref name="index"/>. Call it once a durable
    /// snapshot covers <paramref name="index"/>. Never deletes the segment being appended to.
    /// Deletes oldest first, syncing the directory after each, so a crash never leaves a hole.
    /// </summary>
    /// <returns>How many segments were deleted.</returns>
    /// <exception cref="IOException">The file system failed; the segments not yet deleted remain.</exception>
    public int ReleaseBefore(ulong index)
    {
        lock (_releaseGate)
        {
            List<SegmentInfo> released;
            lock (_lock)
            {
                ThrowIfUnusableUnsynchronized();
                // Only segments wholly durable and complete: never the one being appended to, nor
                // one the writer has not finished (or created) yet.
                int candidates = _segments.FindIndex(s => s.Sequence >= _durableEnd.Sequence);
                InvariantViolationException.Check(candidates >= 0, "The durable position's segment must be listed.");
                int keep = -1;
                for (int i = candidates; i >= 0; i--)
                {
                    if (_segments[i].FirstIndex <= index)
                    {
                        keep = i;
                        break;
                    }
                }

                int count = Math.Min(Math.Max(keep, 0), candidates);
                released = _segments.GetRange(0, count);
                _segments.RemoveRange(0, count);
            }

            foreach (var segment in released)
            {
                _fileSystem.DeleteFile(segment.Path);
                _fileSystem.SyncDirectory(_directory);
            }

            return released.Count;
        }
    }

    /// <summary>Writes and syncs everything appended, stops the writer and releases the directory. Never throws for a log that already failed.</summary>
    public async ValueTask DisposeAsync()
    {
        if (BeginClose())
        {
            await _writerExited.Task.ConfigureAwait(false);
            EndClose();
        }
    }

    /// <summary>Like <see cref="DisposeAsync"/>, blocking.</summary>
    public void Dispose()
    {
        if (BeginClose())
        {
            _writerThread.Join();
            EndClose();
        }
    }

    /// <summary>
    /// For tests: completes when the writer has nothing left to do (or has stopped), so that a
    /// single-threaded workload produces the same sequence of file-system calls on every run.
    /// </summary>
    internal Task WhenWriterIdleAsync()
    {
        lock (_lock)
        {
            if (_failure is not null || _writerExited.Task.IsCompleted || IsIdleUnsynchronized())
            {
                return Task.CompletedTask;
            }

            return (_writerIdle ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
        }
    }

    // ------------------------------------------------------------------ appending

    private ValueTask<WalPosition> AppendUnsynchronized(byte recordType, ReadOnlySpan<byte> payload, ulong index, bool sync)
    {
        var position = AppendFrameUnsynchronized(recordType, payload, index);
        return sync ? WaitForDurableUnsynchronized(position) : new ValueTask<WalPosition>(position);
    }

    /// <summary>Registers a waiter on the active batch (which holds the record at <paramref name="position"/>) and wakes the writer.</summary>
    private ValueTask<WalPosition> WaitForDurableUnsynchronized(WalPosition position)
    {
        var waiter = RentWaiter(position);
        _active.Waiters.Add(waiter);
        _active.NeedsSync = true;
        WakeWriterUnsynchronized();
        return new ValueTask<WalPosition>(waiter, waiter.Version);
    }

    /// <summary>Cuts a segment when needed, copies the frame into the active batch and chains its crc; returns its position.</summary>
    private WalPosition AppendFrameUnsynchronized(byte recordType, ReadOnlySpan<byte> payload, ulong index)
    {
        Debug.Assert(Monitor.IsEntered(_lock));
        int frameSize = WalFormat.FrameSize(payload.Length);
        if (_tailOffset + frameSize > _options.SegmentSizeBytes - WalFormat.SegmentReservedEndBytes)
        {
            CutSegmentUnsynchronized(index);
        }

        if (_active.Length + frameSize > _active.Capacity)
        {
            if (_active.Length > 0 || _active.Waiters.Count > 0)
            {
                SealActiveUnsynchronized();
            }

            _active.EnsureCapacity(Math.Max(frameSize, _options.WriteBufferSizeBytes));
        }

        var position = new WalPosition(_tailSequence, _tailOffset);
        var frame = _active.Reserve(frameSize);
        var payloadDestination = frame.Slice(WalFormat.FrameHeaderSizeBytes, payload.Length);
        payload.CopyTo(payloadDestination); // the one copy of the payload
        frame[(WalFormat.FrameHeaderSizeBytes + payload.Length)..].Clear();
        // The synced word: _durableEnd moves only after a flush has returned (Sync, CutSegment,
        // and Open, which flushes), so it never claims a byte that was not durable, however the
        // writer, the syncer and inline appenders interleave. Taken now, under the lock, it may be
        // older than the flush that completes before this frame is written: conservative, never
        // wrong. While a cut is pending (the frame goes to a segment not yet created) it is 0.
        long syncedOffset = _durableEnd.Sequence == _tailSequence ? _durableEnd.Offset : 0;
        _tailCrc = WalFormat.WriteFrameHeader(frame, recordType, index, payloadDestination, _tailCrc, syncedOffset);
        _needsSyncMark = true;
        _tailOffset += frameSize;
        _bufferedBytes += frameSize;
        if (index != 0)
        {
            _lastIndex = index;
        }

        InvariantViolationException.Check(_active.EndOffset == _tailOffset, "The active batch must end at the tail.");
        return position;
    }

    private async ValueTask<WalPosition> AppendWhenSpaceAsync(byte recordType, ReadOnlyMemory<byte> payload, ulong index, bool sync, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task? spaceAvailable = null;
            ValueTask<WalPosition> appended = default;
            lock (_lock)
            {
                ThrowIfUnusableUnsynchronized();
                if (_bufferedBytes == 0 || _bufferedBytes + WalFormat.FrameSize(payload.Length) <= _options.MaxBufferedBytes)
                {
                    appended = AppendUnsynchronized(recordType, payload.Span, index, sync);
                }
                else
                {
                    _drainRequested = true;
                    WakeWriterUnsynchronized();
                    spaceAvailable = (_spaceAvailable ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
                }
            }

            if (spaceAvailable is null)
            {
                return await appended.ConfigureAwait(false);
            }

            await spaceAvailable.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Ends the current segment logically: the writer creates the next one after writing what precedes.</summary>
    private void CutSegmentUnsynchronized(ulong index)
    {
        long sequence = _tailSequence + 1;
        ulong firstIndex = index != 0 ? index : _lastIndex + 1;
        byte[] header = WalFormat.BuildSegmentHeaderFrame(sequence, firstIndex, _tailCrc, out uint crc);
        _active.CutAfter = new SegmentCut(sequence, firstIndex, header);
        SealActiveUnsynchronized();
        _tailSequence = sequence;
        _tailOffset = header.Length;
        _tailCrc = crc;
        _segments.Add(new SegmentInfo(sequence, firstIndex, Path.Combine(_directory, WalFormat.SegmentFileName(sequence, firstIndex))));
        _active.Reset(sequence, _tailOffset, _options.WriteBufferSizeBytes);
    }

    /// <summary>Queues the active batch for the writer and starts a new, empty one at the tail.</summary>
    private void SealActiveUnsynchronized()
    {
        _sealed.Enqueue(_active);
        _active = RentBatchUnsynchronized(_tailSequence, _tailOffset, _options.WriteBufferSizeBytes);
        WakeWriterUnsynchronized();
    }

    private WalBatch RentBatchUnsynchronized(long sequence, long offset, int capacity)
    {
        var batch = _batchPool.Count > 0 ? _batchPool.Pop() : new WalBatch();
        batch.Reset(sequence, offset, capacity);
        return batch;
    }

    private WalAppendWaiter RentWaiter(WalPosition position)
    {
        if (!_waiterPool.TryDequeue(out var waiter))
        {
            waiter = new WalAppendWaiter(_waiterPool);
        }

        waiter.Position = position;
        return waiter;
    }

    private void WakeWriterUnsynchronized()
    {
        if (_writerWaiting)
        {
            Monitor.PulseAll(_lock); // the syncer waits on the same monitor
        }
    }

    private void ThrowIfUnusableUnsynchronized()
    {
        ObjectDisposedException.ThrowIf(_disposed || _closing, this);
        if (_failure is not null)
        {
            ThrowHelper.ThrowFailed(_failure);
        }
    }

    private List<SegmentInfo> VisibleSegmentsUnsynchronized() =>
        _segments.Where(s => s.Sequence <= _writtenEnd.Sequence).ToList();

    // ------------------------------------------------------------------ the writer and syncer threads
    //
    // Two threads share the group commit so that writing the next group overlaps flushing the
    // previous one: the writer copies sealed batches into the page cache (pwrite) and hands their
    // waiters to the syncer; the syncer flushes (fdatasync) everything written when it starts and
    // completes the waiters that flush covers. A flush makes durable every write that returned
    // before it began, which is why the syncer notes the written position before flushing.
    // Invariants (under _lock): _durableEnd <= _writtenEnd; every waiter in _awaitingSync belongs to
    // a record before _writtenEnd, in position order; the segment file is replaced only by a cut,
    // while the syncer is not flushing (_cutting keeps it from starting).

    private void RunWriter()
    {
        try
        {
            while (true)
            {
                try
                {
                    if (!TakeWork())
                    {
                        return;
                    }

                    WriteWork();
                }
                catch (Exception e)
                {
                    // Whatever the failure (an IO error, a simulated crash), nothing after the last
                    // flush can be trusted: fail everyone waiting and stop.
                    Fail(e, includeWork: true);
                    return;
                }
            }
        }
        finally
        {
            try
            {
                lock (_lock)
                {
                    _writerDone = true;
                    Monitor.PulseAll(_lock);
                    // The syncer may still be flushing the segment file this thread closes.
                    while (!_syncerExited)
                    {
                        Monitor.Wait(_lock);
                    }
                }

                TryWriteSyncMark();
                _segmentFile.Dispose();
            }
            finally
            {
                lock (_lock)
                {
                    _writerIdle?.TrySetResult();
                    _writerIdle = null;
                }

                _writerExited.TrySetResult();
            }
        }
    }

    /// <summary>
    /// At a clean close, when records were appended since the last sync mark and everything written
    /// is durable, appends a sync mark: a frame whose synced word is its own offset. It proves every
    /// record before it durable, so that Open refuses damage to the last records instead of taking
    /// it for a torn write (no later frame would claim them otherwise). Best effort: the records
    /// are durable already, and without the mark the documented bound still holds.
    /// </summary>
    private void TryWriteSyncMark()
    {
        byte[] mark;
        long offset;
        uint crc;
        lock (_lock)
        {
            // Closing: appends are refused from here on, so the tail cannot move under us.
            var tail = new WalPosition(_tailSequence, _tailOffset);
            if (_failure is not null || !_needsSyncMark || _durableEnd != tail || _writtenEnd != tail)
            {
                return;
            }

            offset = _tailOffset;
            mark = WalFormat.BuildSyncMarkFrame(offset, _tailCrc, out crc);
        }

        long fileLength;
        try
        {
            fileLength = _segmentFile.Length;
        }
        catch (Exception)
        {
            return; // as below: the records are durable; the mark is an extra proof
        }

        // The room is relative to the file: a segment created under a larger SegmentSizeBytes keeps
        // its own length. The append rule keeps it (records stop SegmentReservedEndBytes short).
        InvariantViolationException.Check(offset + mark.Length <= fileLength - WalFormat.SegmentTrailerSizeBytes, "Every segment keeps room for a sync mark before its trailer.");
        try
        {
            _segmentFile.Write(offset, mark);
            _segmentFile.Flush();
        }
        catch (Exception)
        {
            // Whatever failed (an IO error, a simulated crash), the records before the mark are
            // durable already; a mark lost or torn here is cut by the next Open as a torn tail.
            return;
        }

        lock (_lock)
        {
            _tailCrc = crc;
            _tailOffset += mark.Length;
            _writtenEnd = _durableEnd = new WalPosition(_tailSequence, _tailOffset);
            _needsSyncMark = false;
        }
    }

    /// <summary>Waits for work and moves it to <see cref="_work"/>. Returns false when the log is closing and nothing is left to write.</summary>
    private bool TakeWork()
    {
        lock (_lock)
        {
            // While an appender writes inline the file is its; otherwise wait for work.
            while (_inlineWriting || (_failure is null && !HasWorkUnsynchronized() && !_closing))
            {
                _writerWaiting = true;
                SignalIdleUnsynchronized();
                if (!_writerStarted)
                {
                    _writerStarted = true;
                    Monitor.PulseAll(_lock); // the constructor waits for both threads to be idle
                }

                Monitor.Wait(_lock);
                _writerWaiting = false;
            }

            if (_failure is not null || (_closing && _finalSyncRequested && !HasWorkUnsynchronized()))
            {
                return false;
            }

            MoveWorkUnsynchronized();
            return true;
        }
    }

    private bool HasWorkUnsynchronized() => _sealed.Count > 0 || _active.NeedsSync || _drainRequested;

    /// <summary>Moves the sealed batches, and the active one when someone needs it written, to <see cref="_work"/>.</summary>
    private void MoveWorkUnsynchronized()
    {
        Debug.Assert(Monitor.IsEntered(_lock));
        while (_sealed.Count > 0)
        {
            _work.Add(_sealed.Dequeue());
        }

        if (_active.NeedsSync || _drainRequested || _closing)
        {
            _active.NeedsSync |= _closing;
            _finalSyncRequested |= _closing;
            _work.Add(_active);
            _active = RentBatchUnsynchronized(_tailSequence, _tailOffset, _options.WriteBufferSizeBytes);
        }

        _drainRequested = false;
    }

    private void RunSyncer()
    {
        try
        {
            while (true)
            {
                SyncTarget target;
                try
                {
                    lock (_lock)
                    {
                        while (_failure is null && !_writerDone && !(_syncRequested && !_cutting && !_inlineWriting))
                        {
                            _syncerWaiting = true;
                            SignalIdleUnsynchronized();
                            if (!_syncerStarted)
                            {
                                _syncerStarted = true;
                                Monitor.PulseAll(_lock); // the constructor waits for both threads to be idle
                            }

                            Monitor.Wait(_lock);
                            _syncerWaiting = false;
                        }

                        if (_failure is not null || !_syncRequested)
                        {
                            return; // failed, or the writer is done and nothing is left to flush
                        }

                        target = BeginSyncUnsynchronized();
                    }

                    _ = Sync(target, _syncCompletions);
                }
                catch (Exception e)
                {
                    Fail(e, includeWork: false);
                    return;
                }
            }
        }
        finally
        {
            lock (_lock)
            {
                _syncerExited = true;
                Monitor.PulseAll(_lock);
            }
        }
    }

    /// <summary>What one flush covers: the file, the written position when it began, and how many waiters of <see cref="_awaitingSync"/> it completes.</summary>
    private readonly record struct SyncTarget(IStorageFile File, WalPosition WrittenEnd, int Waiters, bool NeedsFlush);

    /// <summary>Claims a flush of everything written so far. Must be followed by <see cref="Sync"/> on the same thread.</summary>
    private SyncTarget BeginSyncUnsynchronized()
    {
        Debug.Assert(Monitor.IsEntered(_lock));
        InvariantViolationException.Check(!_syncing && !_cutting, "Only one flush at a time, and none during a segment cut.");
        _syncRequested = false;
        _syncing = true;
        return new SyncTarget(_segmentFile, _writtenEnd, _awaitingSync.Count, _writtenEnd > _durableEnd);
    }

    /// <summary>
    /// Flushes (when anything is unflushed), advances the durable position and completes the
    /// waiters the flush covers. Throws what the file system threw; returns false when the log
    /// failed meanwhile (its waiters are failed then, and nothing is known durable).
    /// </summary>
    private bool Sync(SyncTarget target, List<WalAppendWaiter> completions)
    {
        if (target.NeedsFlush)
        {
            target.File.Flush();
        }

        lock (_lock)
        {
            _syncing = false;
            Monitor.PulseAll(_lock); // a writer waiting to cut a segment
            if (_failure is not null)
            {
                return false; // Fail has failed the waiters already
            }

            InvariantViolationException.Check(target.WrittenEnd >= _durableEnd && target.WrittenEnd <= _writtenEnd, "A flush must not move the durable position back or past the written one.");
            _durableEnd = target.WrittenEnd;
            for (int i = 0; i < target.Waiters; i++)
            {
                completions.Add(_awaitingSync.Dequeue());
            }

            _lastGroupWaiters = target.Waiters;
        }

        CompleteAll(completions);
        return true;
    }

    /// <summary>
    /// True when the calling appender may do the group commit itself, now, on its own thread: the
    /// writer and syncer threads are idle, no one else is writing, and the last group commit carried
    /// at most one waiter. Saves two thread hand-offs per synced append when appends do not
    /// overlap; appends that arrive meanwhile queue for the writer thread. Under concurrency (the
    /// last group had several waiters) the appender does not write: its thread, usually a pool
    /// thread, would block in the flush while the other appenders' continuations wait for a
    /// thread, and the group behind it would be smaller. A lone append again after a burst goes
    /// to the writer thread once, then inline.
    /// </summary>
    private bool TryBeginInlineWriteUnsynchronized()
    {
        Debug.Assert(Monitor.IsEntered(_lock));
        if (!_writerWaiting || !_syncerWaiting || _syncRequested || _syncing || _cutting || _inlineWriting
            || _failure is not null || _closing || _lastGroupWaiters > 1)
        {
            return false;
        }

        InvariantViolationException.Check(_awaitingSync.Count == 0, "An idle log has no written waiters left to flush.");
        _inlineWriting = true;
        _active.NeedsSync = true;
        MoveWorkUnsynchronized();
        return true;
    }

    /// <summary>Writes and flushes the work taken by <see cref="TryBeginInlineWriteUnsynchronized"/>; throws what the file system threw.</summary>
    private void WriteInline()
    {
        try
        {
            WriteWork();
            SyncTarget target;
            lock (_lock)
            {
                target = BeginSyncUnsynchronized();
            }

            if (!Sync(target, _completions))
            {
                ThrowFailedUnderLock();
            }
        }
        catch (Exception e)
        {
            Fail(e, includeWork: true);
            throw;
        }
        finally
        {
            lock (_lock)
            {
                _inlineWriting = false;
                SignalIdleUnsynchronized();
                // Wake the threads only if they have something to do now (appends that arrived
                // meanwhile, a failure, closing); a lone append costs no context switch.
                if (HasWorkUnsynchronized() || _syncRequested || _closing || _failure is not null)
                {
                    Monitor.PulseAll(_lock);
                }
            }
        }
    }

    /// <summary>
    /// Writes <see cref="_work"/>: one gather write per contiguous run of batches, publishing each
    /// run's end and waiters for the syncer; at a segment cut the finished segment is flushed and
    /// the next one created. No lock held while writing.
    /// </summary>
    private void WriteWork()
    {
        int runStart = 0;
        for (int i = 0; i < _work.Count; i++)
        {
            var batch = _work[i];
            bool runEnds = batch.CutAfter is not null || i == _work.Count - 1;
            if (!runEnds)
            {
                InvariantViolationException.Check(_work[i + 1].Sequence == batch.Sequence && _work[i + 1].StartOffset == batch.EndOffset, "Batches of one segment must be contiguous.");
                continue;
            }

            WriteRun(runStart, i);
            var cut = batch.CutAfter;
            PublishWritten(runStart, i);
            runStart = i + 1;
            if (cut is not null)
            {
                CutSegment(cut);
            }
        }

        _work.Clear();
    }

    private void WriteRun(int first, int last)
    {
        _gather.Clear();
        for (int i = first; i <= last; i++)
        {
            if (_work[i].Length > 0)
            {
                _gather.Add(_work[i].Written);
            }
        }

        if (_gather.Count == 0)
        {
            return;
        }

        long offset = _work[first].StartOffset;
        if (_gather.Count == 1)
        {
            _segmentFile.Write(offset, _gather[0].Span);
        }
        else
        {
            _segmentFile.Write(offset, _gather);
        }

        _gather.Clear();
    }

    /// <summary>Records that batches <paramref name="first"/>..<paramref name="last"/> of <see cref="_work"/> are written, returns them to the pool and hands their waiters to the syncer.</summary>
    private void PublishWritten(int first, int last)
    {
        TaskCompletionSource? space;
        List<WalAppendWaiter>? failed = null;
        Exception? failure;
        lock (_lock)
        {
            bool needsSync = false;
            for (int i = first; i <= last; i++)
            {
                var batch = _work[i];
                _bufferedBytes -= batch.Length;
                var end = new WalPosition(batch.Sequence, batch.EndOffset);
                InvariantViolationException.Check(end >= _writtenEnd, "Batches are written in log order.");
                _writtenEnd = end;
                needsSync |= batch.NeedsSync;
                foreach (var waiter in batch.Waiters)
                {
                    if (_failure is null)
                    {
                        _awaitingSync.Enqueue(waiter);
                    }
                    else
                    {
                        (failed ??= []).Add(waiter);
                    }
                }

                batch.Waiters.Clear();
                _batchPool.Push(batch);
                _work[i] = null!; // returned to the pool; WriteWork clears the list
            }

            if (needsSync && _failure is null)
            {
                _syncRequested = true;
                // An appender writing inline flushes its own group: waking the syncer would only
                // cost it a context switch on the latency path.
                if (_syncerWaiting && !_inlineWriting)
                {
                    Monitor.PulseAll(_lock);
                }
            }

            failure = _failure;
            space = _spaceAvailable;
            _spaceAvailable = null;
        }

        if (failed is not null)
        {
            foreach (var waiter in failed)
            {
                waiter.Fail(failure!);
            }
        }

        space?.TrySetResult();
    }

    /// <summary>
    /// Ends the current segment: flushes it (only the last segment may end in a torn tail, so this
    /// one is complete and durable before the next exists), creates the next, and completes every
    /// waiter written so far, all of which that flush covered.
    /// </summary>
    private void CutSegment(SegmentCut cut)
    {
        IStorageFile finished;
        bool needsFlush;
        lock (_lock)
        {
            while (_syncing && _failure is null)
            {
                Monitor.Wait(_lock); // the syncer may be flushing the finished segment
            }

            if (_failure is not null)
            {
                ThrowHelper.ThrowFailed(_failure);
            }

            _cutting = true;
            finished = _segmentFile;
            needsFlush = _writtenEnd > _durableEnd;
        }

        if (needsFlush)
        {
            finished.Flush();
        }

        // Everything written so far is in the finished segment and now durable: its waiters need
        // not wait for the next segment's creation.
        lock (_lock)
        {
            _durableEnd = _writtenEnd;
            while (_awaitingSync.Count > 0)
            {
                _completions.Add(_awaitingSync.Dequeue());
            }

            if (_completions.Count > 0)
            {
                _lastGroupWaiters = _completions.Count;
            }

            _syncRequested = false;
        }

        CompleteAll(_completions);
        var next = WalRecovery.CreateSegment(_fileSystem, _directory, _options, cut);
        // Only now that the next segment durably exists does the finished one say so, in its
        // trailer: a crash before this leaves no trailer and both segments (nothing to miss); after
        // it, a trailer in the last segment means its successor was deleted or lost.
        try
        {
            finished.Write(finished.Length - WalFormat.SegmentTrailerSizeBytes, WalFormat.BuildSegmentTrailer(cut.FirstIndex));
            finished.Flush();
        }
        catch
        {
            next.Dispose();
            throw;
        }

        finished.Dispose();
        lock (_lock)
        {
            _segmentFile = next;
            _writtenEnd = _durableEnd = new WalPosition(cut.Sequence, cut.HeaderFrame.Length);
            _cutting = false;
            Monitor.PulseAll(_lock);
        }
    }

    /// <summary>Stops the log after a failed write or flush: records the failure and fails every waiter it can reach.</summary>
    /// <param name="failure">What the file system threw.</param>
    /// <param name="includeWork">True on the thread that owns <see cref="_work"/> (the writer, or an appender writing inline).</param>
    private void Fail(Exception failure, bool includeWork)
    {
        var failed = new List<WalAppendWaiter>();
        TaskCompletionSource? space;
        Exception first;
        lock (_lock)
        {
            first = _failure ??= failure;
            if (includeWork)
            {
                foreach (var batch in _work)
                {
                    if (batch is not null)
                    {
                        failed.AddRange(batch.Waiters);
                        batch.Waiters.Clear();
                    }
                }

                _work.Clear();
            }

            while (_sealed.Count > 0)
            {
                var batch = _sealed.Dequeue();
                failed.AddRange(batch.Waiters);
                batch.Waiters.Clear();
            }

            failed.AddRange(_active.Waiters);
            _active.Waiters.Clear();
            failed.AddRange(_awaitingSync);
            _awaitingSync.Clear();
            space = _spaceAvailable;
            _spaceAvailable = null;
            _writerIdle?.TrySetResult();
            _writerIdle = null;
            Monitor.PulseAll(_lock);
        }

        foreach (var waiter in failed)
        {
            waiter.Fail(first);
        }

        space?.TrySetResult();
    }

    /// <summary>Below this many waiters a group is completed directly: handing it to the pool would cost more work items than it saves.</summary>
    private const int MinWaitersForSharedCompletion = 16;

    /// <summary>Completes <paramref name="completions"/> (a large group through the thread pool, see <see cref="WalCompletionShare"/>) and clears it.</summary>
    private void CompleteAll(List<WalAppendWaiter> completions)
    {
        if (completions.Count >= MinWaitersForSharedCompletion)
        {
            int shares = Math.Min(Environment.ProcessorCount, completions.Count);
            int perShare = (completions.Count + shares - 1) / shares;
            for (int start = 0; start < completions.Count; start += perShare)
            {
                if (!_completionSharePool.TryDequeue(out var share))
                {
                    share = new WalCompletionShare(_completionSharePool);
                }

                for (int i = start; i < Math.Min(start + perShare, completions.Count); i++)
                {
                    share.Waiters.Add(completions[i]);
                }

                ThreadPool.UnsafeQueueUserWorkItem(share, preferLocal: false);
            }
        }
        else
        {
            foreach (var waiter in completions)
            {
                waiter.Complete();
            }
        }

        completions.Clear();
    }

    private void ThrowFailedUnderLock()
    {
        Exception failure;
        lock (_lock)
        {
            failure = _failure!;
        }

        ThrowHelper.ThrowFailed(failure);
    }

    /// <summary>Completes <see cref="WhenWriterIdleAsync"/> when neither thread has anything left to do.</summary>
    private void SignalIdleUnsynchronized()
    {
        if (_writerIdle is not null && IsIdleUnsynchronized())
        {
            _writerIdle.TrySetResult();
            _writerIdle = null;
        }
    }

    private bool IsIdleUnsynchronized() =>
        (_writerWaiting || _writerDone) && (_syncerWaiting || _syncerExited) && !_inlineWriting
        && !HasWorkUnsynchronized() && !_syncRequested && !_syncing;

    // ------------------------------------------------------------------ closing

    private bool BeginClose()
    {
        lock (_lock)
        {
            if (_closing)
            {
                return false;
            }

            _closing = true;
            Monitor.PulseAll(_lock);
            return true;
        }
    }

    private void EndClose()
    {
        lock (_lock)
        {
            _disposed = true;
            while (_batchPool.Count > 0)
            {
                _batchPool.Pop().ReturnBuffer();
            }

            _active.ReturnBuffer();
        }

        _directoryLock.Dispose();
    }

    private static class ThrowHelper
    {
        [DoesNotReturn]
        [MethodImpl(MethodImplOptions.NoInlining)]
        public static void ThrowReservedRecordType(string paramName) =>
            throw new ArgumentOutOfRangeException(paramName, 0, "Record type 0 is reserved for the log's segment headers; use 1-255.");

        [DoesNotReturn]
        [MethodImpl(MethodImplOptions.NoInlining)]
        public static void ThrowRecordTooLarge(string paramName, int length, int max) =>
            throw new ArgumentOutOfRangeException(paramName, length, $"The payload is larger than WalOptions.MaxRecordSizeBytes ({max}).");

        [DoesNotReturn]
        [MethodImpl(MethodImplOptions.NoInlining)]
        public static void ThrowFailed(Exception failure) =>
            throw new IOException("The write-ahead log stopped after a failed write or flush; records after its durable position may be lost. Dispose it and open it again.", failure);
    }
}
