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
/// <para>Threads. By default (<see cref="WalThreading.BackgroundThreads"/>) the log runs the writer
/// and syncer threads above. With <see cref="WalOptions.Threading"/> set to
/// <see cref="WalThreading.CallerThread"/> it has none: every write and flush runs on the thread of
/// the call that needs it (a synced append, <see cref="SyncAsync"/>, an append that finds the buffers
/// full, disposal) and ends before that call returns, so a given sequence of calls gives one
/// sequence of file-system calls. Same durability and format; concurrent callers take turns.</para>
/// <para>Segments. Files named <c>%016x-%016x.wal</c> (sequence, first index), preallocated to
/// <see cref="WalOptions.SegmentSizeBytes"/>. A new segment is cut when the next record does not
/// fit; its first index is that record's index (or, when it has none, the last index + 1).
/// <see cref="ReleaseBefore"/> deletes old segments once a snapshot covers them.</para>
/// <para>Thread-safety. Every member may be called from any thread concurrently. Records are
/// ordered by the order in which their <see cref="AppendAsync"/> calls take the log's lock.
/// One instance per directory: <see cref="Open"/> takes an exclusive lock on it.</para>
/// <para>Failure. If a write or flush fails, the log stops: the appends and syncs pending then
/// fail with the file system's exception, and every later append or sync throws
/// <see cref="StorageFaultedException"/> whose <see cref="Exception.InnerException"/> is that first
/// failure. Dispose and reopen it; opening repairs what the failure left and recovers exactly what
/// is durable.</para>
/// </remarks>
public sealed class WriteAheadLog : IAsyncDisposable, IDisposable
{
    private static readonly Action<ILogger, string, long, long, string, string, long, Exception?> s_logTailRepaired =
        LoggerMessage.Define<string, long, long, string, string, long>(
            LogLevel.Warning,
            new EventId(1, "WalTailRepaired"),
            "Write-ahead log '{SegmentPath}': cut a torn tail at offset {Offset} ({LengthBytes} bytes, kept in '{SideFilePath}'): {Reason} Every byte before offset {ProvenDurableOffset} was proven durable and is kept.");

    private readonly IFileSystem _fileSystem;
    private readonly string _directory;
    // Copied from the options once: their getters derive unset values, and appends read them each time.
    private readonly int _maxRecordSizeBytes;
    private readonly IDisposable _directoryLock;
    // Everything between an append and its durability: the tail, batches, waiters, threads, states.
    private readonly WalGroupCommit _groupCommit;
    private readonly Func<ValueTask>? _beforeSync;
    private readonly object _releaseGate = new();
    // The released segment kept for the next cut to reuse (shared with the group commit).
    private readonly WalSpareSegment _spare;
    // 0 until Dispose or DisposeAsync first runs; disposal happens once.
    private int _disposeStarted;

    private WriteAheadLog(IFileSystem fileSystem, string directory, WalOptions options, IDisposable directoryLock, RecoveredLog recovered)
    {
        _fileSystem = fileSystem;
        _directory = directory;
        _maxRecordSizeBytes = options.MaxRecordSizeBytes;
        _directoryLock = directoryLock;
        TailRepair = recovered.Repair;
        _spare = new WalSpareSegment(fileSystem, directory, options.SegmentSizeBytes);
        _groupCommit = new WalGroupCommit(fileSystem, directory, options, recovered, _spare);
        _beforeSync = options.BeforeSync;
    }

    /// <summary>The directory holding the segments.</summary>
    public string Directory => _directory;

    /// <summary>What <see cref="Open"/> cut from a torn tail (file, offset, bytes cut, side file, reason, and how far the log was proven durable), or null when the log ended cleanly. Also logged as a warning through <see cref="WalOptions.Logger"/>.</summary>
    public WalTailRepair? TailRepair { get; }

    /// <summary>The index of the last record appended with a non-zero index (in append order, so it can go down after Raft truncates its log).</summary>
    public ulong LastIndex => _groupCommit.LastIndex;

    /// <summary>Where the next record will go.</summary>
    public WalPosition EndPosition => _groupCommit.EndPosition;

    /// <summary>Every record before this position is durable.</summary>
    public WalPosition DurablePosition => _groupCommit.DurablePosition;

    /// <summary>The segment files, oldest first (the last is the one being appended to).</summary>
    public IReadOnlyList<string> SegmentPaths => _groupCommit.SegmentPaths();

    /// <summary>
    /// Opens the log in <paramref name="directory"/>, creating the directory and a first segment when
    /// there are none. Checks every segment's header and scans the last segment to its end,
    /// repairing a torn tail (see <see cref="TailRepair"/>).
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="options"/> break a rule between options (a record of <see cref="WalOptions.MaxRecordSizeBytes"/> must fit in a segment; <see cref="WalOptions.MaxBufferedBytes"/> must hold one buffer).</exception>
    /// <exception cref="StorageLockedException">Another open log (in this process or another) holds the directory.</exception>
    /// <exception cref="CorruptionException">A segment is missing (a hole in the sequence, or the last one, whose predecessor's trailer names it: <see cref="CorruptionException.Path"/> is the missing file), a header is damaged, or the last segment holds damage a torn write cannot explain (including damage a later frame proves was durable). Nothing is repaired then.</exception>
    /// <exception cref="NotSupportedException">The log was written in format version 1 by a pre-release build; it is not converted.</exception>
    /// <exception cref="IOException"><paramref name="directory"/> is an existing regular file, or the file system failed.</exception>
    public static WriteAheadLog Open(IFileSystem fileSystem, string directory, WalOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(fileSystem);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        options ??= WalOptions.Default;
        options.Validate();
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
    /// <exception cref="StorageFaultedException">The log stopped after an earlier failed write or flush (<see cref="Exception.InnerException"/> is that failure); it accepts nothing more until disposed and reopened.</exception>
    /// <exception cref="IOException">This append's own write or flush failed (the file system's exception; the task faults with it): the record may or may not be durable, and the log is faulted from then on.</exception>
    public ValueTask<WalPosition> AppendAsync(byte recordType, ReadOnlyMemory<byte> payload, ulong index = 0, bool sync = true, CancellationToken cancellationToken = default)
    {
        if (recordType == WalFormat.SegmentHeaderType)
        {
            ThrowHelper.ThrowReservedRecordType(nameof(recordType));
        }

        if (payload.Length > _maxRecordSizeBytes)
        {
            ThrowHelper.ThrowRecordTooLarge(nameof(payload), payload.Length, _maxRecordSizeBytes);
        }

        cancellationToken.ThrowIfCancellationRequested();
        return _groupCommit.Append(recordType, payload, index, sync, cancellationToken);
    }

    /// <summary>Completes when every record appended before the call is durable.</summary>
    /// <exception cref="ObjectDisposedException">The log was disposed.</exception>
    /// <exception cref="StorageFaultedException">The log stopped after an earlier failed write or flush (<see cref="Exception.InnerException"/> is that failure).</exception>
    /// <exception cref="IOException">The write or flush this sync waited on failed (the file system's exception); the log is faulted from then on.</exception>
    public ValueTask SyncAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return _beforeSync is null ? _groupCommit.Sync() : SyncAfterDelayAsync();
    }

    // WalOptions.BeforeSync (the simulator's slow disk): the flush starts once the seam completes.
    private async ValueTask SyncAfterDelayAsync()
    {
        await _beforeSync!();
        await _groupCommit.Sync();
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
        var visible = SegmentsForNewReader(out var writtenEnd);
        int start = 0;
        for (int i = visible.Count - 1; i >= 0; i--)
        {
            if (visible[i].FirstIndex <= index)
            {
                start = i;
                break;
            }
        }

        return new WalReader(_fileSystem, visible.GetRange(start, visible.Count - start), writtenEnd, new WalPosition(visible[start].Sequence, 0), _spare.ReaderClosed);
    }

    /// <summary>Opens a reader that streams every record from <paramref name="position"/> (a position an append returned) to the records written when the reader was opened.</summary>
    /// <exception cref="ArgumentOutOfRangeException">No segment with that sequence exists (released, or not yet written).</exception>
    public WalReader ReadFrom(WalPosition position)
    {
        var visible = SegmentsForNewReader(out var writtenEnd);
        int start = visible.FindIndex(s => s.Sequence == position.Sequence);
        if (start < 0 || position > writtenEnd)
        {
            _spare.ReaderClosed();
            throw new ArgumentOutOfRangeException(nameof(position), position, "No written segment holds this position.");
        }

        return new WalReader(_fileSystem, visible.GetRange(start, visible.Count - start), writtenEnd, position, _spare.ReaderClosed);
    }

    /// <summary>
    /// The segments a new reader may read and the written end, with the reader counted first: a
    /// release from then on deletes its segments instead of keeping one as the spare. The caller
    /// hands <see cref="WalSpareSegment.ReaderClosed"/> to the reader, or calls it if it throws.
    /// </summary>
    private List<SegmentInfo> SegmentsForNewReader(out WalPosition writtenEnd)
    {
        _spare.ReaderOpened();
        try
        {
            return _groupCommit.VisibleSegments(out writtenEnd);
        }
        catch
        {
            _spare.ReaderClosed();
            throw;
        }
    }

    /// <summary>
    /// Deletes the segments wholly before <paramref name="index"/>: every segment older than the
    /// newest one whose first index is at most <paramref name="index"/>. Call it once a durable
    /// snapshot covers <paramref name="index"/>. Never deletes the segment being appended to.
    /// Deletes oldest first, syncing the directory after each, so a crash never leaves a hole. One
    /// released segment may be kept under a temporary name instead, for the next segment to reuse
    /// its disk blocks (never while a <see cref="WalReader"/> of this log is open); an open deletes it.
    /// </summary>
    /// <returns>How many segments were deleted (or kept for reuse).</returns>
    /// <exception cref="IOException">The file system failed; the segments not yet deleted remain.</exception>
    public int ReleaseBefore(ulong index)
    {
        lock (_releaseGate)
        {
            var released = _groupCommit.DetachSegmentsBefore(index);
            foreach (var segment in released)
            {
                // The first one, when no spare is kept, becomes the spare (renamed, not deleted):
                // the next cut reuses its blocks. Either way its segment name is gone before the
                // next segment's, oldest first.
                // (A kept one's rename is synced inside TryKeep, before a cut may recycle it.)
                if (!_spare.TryKeep(segment))
                {
                    _fileSystem.DeleteFile(segment.Path);
                    _fileSystem.SyncDirectory(_directory);
                }
            }

            return released.Count;
        }
    }

    /// <summary>Writes and syncs everything appended, stops the writer and releases the directory. Never throws for a log that already failed. Later calls do nothing.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposeStarted, 1) == 0)
        {
            await _groupCommit.CloseAsync().ConfigureAwait(false);
            _directoryLock.Dispose();
        }
    }

    /// <summary>Like <see cref="DisposeAsync"/>, blocking.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposeStarted, 1) == 0)
        {
            _groupCommit.Close();
            _directoryLock.Dispose();
        }
    }

    /// <summary>
    /// For tests: completes when the writer has nothing left to do (or has stopped), so that a
    /// single-threaded workload produces the same sequence of file-system calls on every run.
    /// </summary>
    internal Task WhenWriterIdleAsync() => _groupCommit.WhenIdleAsync();

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

    }
}
