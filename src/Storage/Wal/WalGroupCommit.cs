using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Storage.Wal;

/// <summary>
/// The group commit of a <see cref="WriteAheadLog"/>: the tail the appenders write frames to, the
/// batches and waiters between an append and its durability, the written and durable positions,
/// and the segment file. Thread-safe: every member may be called from any thread.
/// </summary>
/// <remarks>
/// <para>Three named states, each changed only by its transition methods, which check always on
/// that they start from a legal state and re-check the rules below (all under <see cref="_lock"/>):</para>
/// <list type="bullet">
/// <item>The write lane (<see cref="WriteLane"/>): who may write to the segment file. Idle: nobody;
/// WriterThread or Caller: that one alone writes (the file, <see cref="_work"/> and the cut are its);
/// Cutting: its owner is ending the segment (no flush may start, the file is about to change).</item>
/// <item>The flush lane (<see cref="FlushLane"/>): Idle (nothing written waits for a flush), Requested
/// (written records wait), Flushing (a flush runs; WithRequest: and more wait behind it).</item>
/// <item>The lifecycle (<see cref="Lifecycle"/>): Open, Closing (no new appends; what was appended is
/// written, flushed and marked), Faulted (a write or flush failed: <see cref="_failure"/> is the first
/// failure; nothing more is written), Closed.</item>
/// </list>
/// <para>Rules: durable end ≤ written end ≤ tail; no cut while a flush runs, and no flush starts
/// during a cut; a caller takes the write lane only when both lanes are idle; once the flush lane
/// is idle no written waiter is left (every waiter's batch asked for a flush when it was written).</para>
/// <para>One set of steps, take work → write → publish → begin flush → flush → complete, shared by
/// two drivers: the writer and syncer threads (<see cref="WalThreading.BackgroundThreads"/>: writing
/// the next group overlaps flushing the previous one; a lone synced append still commits on its own
/// thread when both lanes are idle), or the calling thread alone (<see cref="WalThreading.CallerThread"/>:
/// every synced append, sync, back-pressure drain and close commits inside its call).</para>
/// </remarks>
internal sealed class WalGroupCommit
{
    /// <summary>Below this many waiters a group is completed directly: handing it to the pool would cost more work items than it saves.</summary>
    private const int MinWaitersForSharedCompletion = 16;

    /// <summary>
    /// How far past a small write's end the write lane writes zeros, so that the next small flushes
    /// land in blocks already written. Why: a fresh segment's preallocated blocks are unwritten
    /// extents (a recycled segment's were written in its previous life: it gets none), and the first
    /// fdatasync after a write into one must also write the extent change (metadata): on the test
    /// VM a 4 KiB write + fdatasync into written blocks took about half as long as into
    /// unwritten ones (docs/benchmarks.md, "RaftNode single caller, session 28"). Zeros written
    /// ahead convert 64 KiB of blocks in one flush instead of one block every few flushes.
    /// </summary>
    private const int WriteAheadZerosBytes = 64 * 1024;

    /// <summary>
    /// Runs longer than this get no zeros after them, and start the count of small runs again (see
    /// <see cref="WriteAheadZerosMinQuietRuns"/>): a large flush converts its own blocks in one
    /// extent change already, and zeros would only add bytes to a flush the disk's bandwidth bounds.
    /// The zeros are for a log with few appenders (a lone proposal's run is one 1 KiB entry and its
    /// hard state; a dozen callers' about 13 KiB), whose every flush waits on the extent change.
    /// </summary>
    private const int WriteAheadZerosMaxRunBytes = 16 * 1024;

    /// <summary>
    /// Zeros are written only after at least this many small runs in a row since the last zeros (a
    /// small run is at most <see cref="WriteAheadZerosMaxRunBytes"/> and the last of its work), and
    /// only with a run that nothing waits behind (no append buffered or sealed, no flush running; a
    /// run that would get zeros but has something behind it starts the count again). Two reasons.
    /// It bounds the zeros to about one 4 KiB block per run (64 KiB per 16 runs): every byte of
    /// zeros is a byte written twice. And a busy log writes none: under many appenders a log writes
    /// runs of hundreds of KiB with a few small ones between them (a hard state alone, the rest of
    /// a wave cut by the append limit), and each small one found the records past the last zeros
    /// and carried 64 KiB — at 1,024 proposals in flight about 40 such runs a second per cluster
    /// (session 29's trace), where the 1,024 row was lower in 10 of 14 pairs (session 28). A
    /// lone appender's kilobyte runs (50 or more per 64 KiB) are all small and idle, and get zeros
    /// every time they pass the last ones. RaftNode's loop holds its next Ready back while a sync
    /// runs, so even its busy log's small runs are written with nothing queued behind them: the
    /// runs before, not the queue, tell a busy log from a lone proposal.
    /// </summary>
    private const int WriteAheadZerosMinQuietRuns = 16;

    /// <summary>The file system block zeros ahead are aligned to (ext4's and most others' 4 KiB): the run's last block is written whole.</summary>
    private const int FileBlockBytes = 4096;

    private readonly object _lock = new();
    private readonly IFileSystem _fileSystem;
    private readonly string _directory;
    private readonly WalOptions _options;
    private readonly bool _callerThreadOnly;
    // A released segment a cut may reuse (null: every cut creates a fresh file).
    private readonly WalSpareSegment? _spare;
    // Copied from _options once: their getters derive unset values, and appends read them each time.
    private readonly long _maxBufferedBytes;
    private readonly long _segmentRecordLimitBytes;
    private readonly int _writeBufferSizeBytes;
    private readonly Thread? _writerThread;
    private readonly Thread? _syncerThread;
    private readonly TaskCompletionSource _writerExited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ConcurrentQueue<WalAppendWaiter> _waiterPool = new();
    private readonly ConcurrentQueue<WalCompletionShare> _completionSharePool = new();

    // ---- The three states (guarded by _lock). ----
    private WriteLane _writeLane;
    // Whose lane a cut returns to (WriterThread or Caller); meaningful only while Cutting.
    private WriteLane _cutOwner;
    private FlushLane _flushLane;
    private Lifecycle _lifecycle;
    // Set when _lifecycle became Faulted (the first failure); never cleared, so it outlives Closed.
    private Exception? _failure;

    // ---- Guarded by _lock: the appenders' view of the tail. ----
    // Invariant: _active.Sequence == _tailSequence and _active.EndOffset == _tailOffset.
    private readonly List<SegmentInfo> _segments;
    private readonly Queue<WalBatch> _sealed = new();
    private readonly Stack<WalBatch> _batchPool = new();
    private WalBatch _active;
    private long _tailSequence;
    private long _tailOffset;
    private uint _tailCrc;
    // What the tail segment's frames are tagged with (none unless it is recycled).
    private FrameTag _tailTag;
    private ulong _lastIndex;
    // True when a record was appended after the last frame that proves it durable (a sync mark):
    // a clean close then appends a sync mark (docs/formats.md, "Open: torn tail or corruption").
    // False at open: Open leaves every recovered record proven.
    private bool _needsSyncMark;
    private long _bufferedBytes;
    // An appender waits for buffer space: the writer thread takes the active batch too.
    private bool _drainRequested;
    // Closing only: the writer has taken the last group (the active batch, synced); it stops once nothing is left.
    private bool _finalGroupTaken;
    private TaskCompletionSource? _spaceAvailable;
    private WalPosition _writtenEnd;
    private WalPosition _durableEnd;
    private TaskCompletionSource? _idle;
    private int _lastGroupWaiters;
    // Written waiters, in position order, each before _writtenEnd; non-empty only while the flush lane is not Idle.
    private readonly Queue<WalAppendWaiter> _awaitingSync = new();

    // ---- Guarded by _lock: where the background threads are (BackgroundThreads only). ----
    private bool _writerThreadWaiting;
    private bool _syncerThreadWaiting;
    private bool _writerThreadDone;
    private bool _syncerThreadExited;

    // ---- Owned by the write lane's holder. ----
    // _segmentFile is the exception the flusher shares: it reads it under _lock when a flush
    // begins, and a cut replaces it under _lock only while no flush runs (Cutting).
    private IStorageFile _segmentFile;
    // Invariant: every byte of _segmentFile below _segmentWrittenEnd has been written by this log
    // (records, or zeros after them, or the file was opened with them); zeros are written ahead
    // only at or past the written end, so never over a record, and below _segmentZerosLimit, so
    // never over the room kept for the sync mark and the trailer.
    private long _segmentWrittenEnd;
    private long _segmentZerosLimit;
    // Small runs in a row since the last zeros ahead, the last large run, or the last run that
    // would have got zeros but had something waiting behind it (WriteAheadZerosMinQuietRuns − 1
    // at open and at a cut, so a first small, idle run gets them).
    private int _quietRunsSinceZeros;
    private readonly List<ReadOnlyMemory<byte>> _gather = [];
    private readonly List<WalBatch> _work = [];
    private readonly List<WalAppendWaiter> _completions = [];

    // ---- Owned by the syncer thread. ----
    private readonly List<WalAppendWaiter> _syncCompletions = [];

    public WalGroupCommit(IFileSystem fileSystem, string directory, WalOptions options, RecoveredLog recovered, WalSpareSegment? spare = null)
    {
        _spare = spare;
        _fileSystem = fileSystem;
        _directory = directory;
        _options = options;
        _callerThreadOnly = options.Threading == WalThreading.CallerThread;
        _maxBufferedBytes = options.MaxBufferedBytes;
        _segmentRecordLimitBytes = options.SegmentSizeBytes - WalFormat.SegmentReservedEndBytes;
        _writeBufferSizeBytes = options.WriteBufferSizeBytes;
        _segments = recovered.Segments;
        _segmentFile = recovered.LastSegment;
        _tailSequence = _segments[^1].Sequence;
        _tailOffset = recovered.TailOffset;
        _tailCrc = recovered.TailCrc;
        _tailTag = recovered.TailTag;
        _lastIndex = recovered.LastIndex;
        _writtenEnd = _durableEnd = new WalPosition(_tailSequence, _tailOffset);
        SetSegmentFileWrittenTo(_segmentFile, _tailOffset, recycled: _tailTag.IsTagged);
        _active = RentBatchUnsynchronized(_tailSequence, _tailOffset, _writeBufferSizeBytes);
        if (_callerThreadOnly)
        {
            _writerThreadDone = _syncerThreadExited = true; // no threads: nothing of theirs to wait for
            return;
        }

        // Both lanes start idle, so a first lone append commits on its own thread whether or not
        // the threads have reached their first wait.
        _writerThread = new Thread(RunWriter) { IsBackground = true, Name = "EmbeddedRaft WAL writer" };
        _syncerThread = new Thread(RunSyncer) { IsBackground = true, Name = "EmbeddedRaft WAL syncer" };
        _writerThread.UnsafeStart();
        _syncerThread.UnsafeStart();
    }

    /// <summary>Who may write to the segment file.</summary>
    private enum WriteLane
    {
        /// <summary>Nobody writes; <see cref="_work"/> is empty.</summary>
        Idle,

        /// <summary>The writer thread writes <see cref="_work"/>.</summary>
        WriterThread,

        /// <summary>A calling thread writes and flushes its own group (taken only with both lanes idle).</summary>
        Caller,

        /// <summary>The holder (<see cref="_cutOwner"/>) ends the segment: no flush runs or starts.</summary>
        Cutting,
    }

    /// <summary>Whether written records wait for a flush, and whether one runs.</summary>
    private enum FlushLane
    {
        /// <summary>Every written waiter is complete (<see cref="_awaitingSync"/> is empty).</summary>
        Idle,

        /// <summary>Written records wait for a flush that has not begun.</summary>
        Requested,

        /// <summary>A flush runs; nothing else waits.</summary>
        Flushing,

        /// <summary>A flush runs and records written after it began wait for the next.</summary>
        FlushingWithRequest,
    }

    /// <summary>The log's life.</summary>
    private enum Lifecycle
    {
        /// <summary>Appends and syncs are accepted.</summary>
        Open,

        /// <summary>Disposal began: nothing new is accepted; what was appended is written, flushed and marked.</summary>
        Closing,

        /// <summary>A write or flush failed (<see cref="_failure"/>): nothing more is written; callers get <see cref="StorageFaultedException"/>.</summary>
        Faulted,

        /// <summary>Disposed: the threads have stopped and the file is closed.</summary>
        Closed,
    }

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

    private bool IsFlushing => _flushLane is FlushLane.Flushing or FlushLane.FlushingWithRequest;

    // ------------------------------------------------------------------ the public operations

    /// <summary>Appends a frame (the arguments are checked by the log); see <see cref="WriteAheadLog.AppendAsync"/>.</summary>
    public ValueTask<WalPosition> Append(byte recordType, ReadOnlyMemory<byte> payload, ulong index, bool sync, CancellationToken cancellationToken)
    {
        int frameSize = WalFormat.FrameSize(payload.Length);
        WalPosition position = default;
        bool hasSpace;
        lock (_lock)
        {
            ThrowIfUnusableUnsynchronized();
            hasSpace = _bufferedBytes == 0 || _bufferedBytes + frameSize <= _maxBufferedBytes;
            if (hasSpace)
            {
                position = AppendFrameUnsynchronized(recordType, payload.Span, index);
                if (!sync)
                {
                    return new ValueTask<WalPosition>(position);
                }

                if (!TryTakeCallerLaneUnsynchronized())
                {
                    return WaitForDurableUnsynchronized(position);
                }
            }
        }

        if (hasSpace)
        {
            // Fast path: nobody else is writing, so this appender commits its own group, synchronously.
            CommitOnCallerThread();
            return new ValueTask<WalPosition>(position);
        }

        if (_callerThreadOnly)
        {
            // No writer to wait for: this caller writes (and flushes) what is buffered, then appends.
            DrainOnCallerThread();
            return Append(recordType, payload, index, sync, cancellationToken);
        }

        // Back-pressure: the writer is behind by MaxBufferedBytes; wait for it (rare, allocates).
        return AppendWhenSpaceAsync(recordType, payload, index, sync, cancellationToken);
    }

    /// <summary>Completes when every record appended before the call is durable; see <see cref="WriteAheadLog.SyncAsync"/>.</summary>
    public ValueTask Sync()
    {
        lock (_lock)
        {
            ThrowIfUnusableUnsynchronized();
            if (_durableEnd == new WalPosition(_tailSequence, _tailOffset))
            {
                return ValueTask.CompletedTask;
            }

            if (!TryTakeCallerLaneUnsynchronized())
            {
                var waiter = RentWaiter(new WalPosition(_tailSequence, _tailOffset));
                _active.Waiters.Add(waiter);
                _active.NeedsSync = true;
                WakeWriterUnsynchronized();
                return new ValueTask(waiter, waiter.Version);
            }
        }

        CommitOnCallerThread();
        return ValueTask.CompletedTask;
    }

    /// <summary>The segments that hold written records, oldest first, and where the written records end.</summary>
    /// <exception cref="ObjectDisposedException">The log is closed.</exception>
    public List<SegmentInfo> VisibleSegments(out WalPosition writtenEnd)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_lifecycle == Lifecycle.Closed, typeof(WriteAheadLog));
            writtenEnd = _writtenEnd;
            var end = _writtenEnd;
            return _segments.Where(s => s.Sequence <= end.Sequence).ToList();
        }
    }

    /// <summary>The paths of the segments that hold written records, oldest first (also after the log is closed).</summary>
    public List<string> SegmentPaths()
    {
        lock (_lock)
        {
            var end = _writtenEnd;
            return _segments.Where(s => s.Sequence <= end.Sequence).Select(s => s.Path).ToList();
        }
    }

    /// <summary>
    /// Removes from the list, and returns, the segments wholly before <paramref name="index"/> that
    /// are durable and complete: never the one being appended to, nor one not finished (or created) yet.
    /// </summary>
    public List<SegmentInfo> DetachSegmentsBefore(ulong index)
    {
        lock (_lock)
        {
            ThrowIfUnusableUnsynchronized();
            int candidates = _segments.FindIndex(s => s.Sequence >= _durableEnd.Sequence);
            if (candidates < 0)
            {
                throw new InvariantViolationException("The durable position's segment must be listed.");
            }

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
            var released = _segments.GetRange(0, count);
            _segments.RemoveRange(0, count);
            return released;
        }
    }

    /// <summary>
    /// For tests: completes when nothing is left to write or flush (or the log stopped), so that a
    /// single-threaded workload produces the same sequence of file-system calls on every run.
    /// </summary>
    public Task WhenIdleAsync()
    {
        if (_callerThreadOnly)
        {
            return Task.CompletedTask; // nothing runs in the background: every commit ends before its call returns
        }

        lock (_lock)
        {
            if (_lifecycle is Lifecycle.Faulted or Lifecycle.Closed || _writerExited.Task.IsCompleted || IsIdleUnsynchronized())
            {
                return Task.CompletedTask;
            }

            return (_idle ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
        }
    }

    /// <summary>Writes, flushes and marks everything appended, stops the threads and closes the file; blocking. Never throws for a failure of the file system (the log faults instead).</summary>
    public void Close()
    {
        BeginClose();
        if (_callerThreadOnly)
        {
            CloseOnCallerThread();
        }
        else
        {
            _writerThread!.Join();
        }

        EndClose();
    }

    /// <summary>Like <see cref="Close"/>, waiting asynchronously for the writer thread.</summary>
    public async ValueTask CloseAsync()
    {
        if (_callerThreadOnly)
        {
            Close();
            return;
        }

        BeginClose();
        await _writerExited.Task.ConfigureAwait(false);
        EndClose();
    }

    // ------------------------------------------------------------------ transitions of the three states

    /// <summary>The rules every transition re-checks.</summary>
    private void CheckRulesUnsynchronized()
    {
        if (!(_durableEnd <= _writtenEnd && _writtenEnd <= new WalPosition(_tailSequence, _tailOffset)))
        {
            throw new InvariantViolationException("Durable end ≤ written end ≤ tail.");
        }

        if (_writeLane == WriteLane.Cutting && IsFlushing)
        {
            throw new InvariantViolationException("No flush runs during a segment cut.");
        }

        if (_flushLane == FlushLane.Idle && _awaitingSync.Count != 0)
        {
            throw new InvariantViolationException("No written waiter is left once the flush lane is idle.");
        }

        if (!(_lifecycle == Lifecycle.Faulted ? _failure is not null : _lifecycle != Lifecycle.Open || _failure is null))
        {
            throw new InvariantViolationException("A faulted log has its first failure recorded; an open one has none.");
        }
    }

    /// <summary>Write lane Idle → <paramref name="owner"/> (WriterThread, or Caller with both lanes idle).</summary>
    private void TakeWriteLaneUnsynchronized(WriteLane owner)
    {
        if (owner is not (WriteLane.WriterThread or WriteLane.Caller))
        {
            throw new InvariantViolationException("Only the writer thread or a caller holds the write lane.");
        }

        if (_writeLane != WriteLane.Idle || _work.Count != 0)
        {
            throw new InvariantViolationException("The write lane is taken only when idle, with no work left in it.");
        }

        if (owner == WriteLane.Caller && _flushLane != FlushLane.Idle)
        {
            throw new InvariantViolationException("A caller writes only when both lanes are idle.");
        }

        if (_lifecycle == Lifecycle.Faulted)
        {
            throw new InvariantViolationException("Nothing is written after a failure.");
        }

        _writeLane = owner;
        CheckRulesUnsynchronized();
    }

    /// <summary>Write lane <paramref name="owner"/> → Idle (or, after a failure, Cutting → Idle: the cut was abandoned).</summary>
    private void ReleaseWriteLaneUnsynchronized(WriteLane owner)
    {
        bool abandonedCut = _writeLane == WriteLane.Cutting && _cutOwner == owner && _lifecycle == Lifecycle.Faulted;
        if (_writeLane != owner && !abandonedCut)
        {
            throw new InvariantViolationException("Only the write lane's holder releases it.");
        }

        _writeLane = WriteLane.Idle;
        CheckRulesUnsynchronized();
        SignalIdleUnsynchronized();
    }

    /// <summary>Write lane WriterThread or Caller → Cutting; no flush may run.</summary>
    private void BeginCutUnsynchronized()
    {
        if (_writeLane is not (WriteLane.WriterThread or WriteLane.Caller))
        {
            throw new InvariantViolationException("Only the write lane's holder cuts a segment.");
        }

        if (IsFlushing)
        {
            throw new InvariantViolationException("No cut while a flush runs.");
        }

        _cutOwner = _writeLane;
        _writeLane = WriteLane.Cutting;
        CheckRulesUnsynchronized();
    }

    /// <summary>Write lane Cutting → its owner, once the next segment is the file.</summary>
    private void EndCutUnsynchronized()
    {
        if (_writeLane != WriteLane.Cutting)
        {
            throw new InvariantViolationException("Only a cut ends a cut.");
        }

        _writeLane = _cutOwner;
        CheckRulesUnsynchronized();
        Monitor.PulseAll(_lock); // a syncer waiting for the cut to end
    }

    /// <summary>Flush lane Idle → Requested, or Flushing → FlushingWithRequest: written records wait for a flush.</summary>
    private void RequestFlushUnsynchronized()
    {
        _flushLane = _flushLane switch
        {
            FlushLane.Idle or FlushLane.Requested => FlushLane.Requested,
            _ => FlushLane.FlushingWithRequest,
        };
        CheckRulesUnsynchronized();
    }

    /// <summary>Flush lane Requested (or, for a caller's own group, Idle) → Flushing: claims a flush of everything written so far.</summary>
    private FlushTarget BeginFlushUnsynchronized()
    {
        if (_flushLane is not (FlushLane.Idle or FlushLane.Requested))
        {
            throw new InvariantViolationException("Only one flush at a time.");
        }

        if (_writeLane == WriteLane.Cutting)
        {
            throw new InvariantViolationException("No flush starts during a segment cut.");
        }

        _flushLane = FlushLane.Flushing;
        CheckRulesUnsynchronized();
        return new FlushTarget(_segmentFile, _writtenEnd, _awaitingSync.Count, _writtenEnd > _durableEnd);
    }

    /// <summary>Flush lane Flushing → Idle, or FlushingWithRequest → Requested (after the covered waiters were taken, or failed).</summary>
    private void EndFlushUnsynchronized()
    {
        if (!IsFlushing)
        {
            throw new InvariantViolationException("Only a running flush ends.");
        }

        _flushLane = _flushLane == FlushLane.FlushingWithRequest ? FlushLane.Requested : FlushLane.Idle;
        CheckRulesUnsynchronized();
        Monitor.PulseAll(_lock); // a writer waiting to cut a segment, or the syncer
        SignalIdleUnsynchronized();
    }

    /// <summary>Flush lane Requested → Idle at a cut, whose flush of the finished segment covered every written record.</summary>
    private void FlushCoveredByCutUnsynchronized()
    {
        if (_writeLane != WriteLane.Cutting || IsFlushing)
        {
            throw new InvariantViolationException("Only a cut covers the flush lane, and none runs then.");
        }

        _flushLane = FlushLane.Idle;
        CheckRulesUnsynchronized();
    }

    /// <summary>Lifecycle Open → Closing (a faulted log stays Faulted: its writer stops by itself).</summary>
    private void BeginClose()
    {
        lock (_lock)
        {
            if (_lifecycle is not (Lifecycle.Open or Lifecycle.Faulted))
            {
                throw new InvariantViolationException("A log is closed once.");
            }

            if (_lifecycle == Lifecycle.Open)
            {
                _lifecycle = Lifecycle.Closing;
            }

            CheckRulesUnsynchronized();
            Monitor.PulseAll(_lock);
        }
    }

    /// <summary>Lifecycle Closing or Faulted → Closed, once the threads stopped and the file is closed.</summary>
    private void EndClose()
    {
        lock (_lock)
        {
            if (_lifecycle is not (Lifecycle.Closing or Lifecycle.Faulted))
            {
                throw new InvariantViolationException("Only a closing log is closed.");
            }

            if (_writeLane != WriteLane.Idle && _lifecycle != Lifecycle.Faulted)
            {
                throw new InvariantViolationException("Nobody writes once the log is closed.");
            }

            _lifecycle = Lifecycle.Closed;
            while (_batchPool.Count > 0)
            {
                _batchPool.Pop().ReturnBuffer();
            }

            _active.ReturnBuffer();
        }
    }

    /// <summary>Lifecycle Open or Closing → Faulted (first failure kept): fails every waiter it can reach.</summary>
    /// <param name="failure">What the file system threw.</param>
    /// <param name="includeWork">True on the write lane's holder (it owns <see cref="_work"/>).</param>
    private void Fail(Exception failure, bool includeWork)
    {
        var failed = new List<WalAppendWaiter>();
        TaskCompletionSource? space;
        Exception first;
        lock (_lock)
        {
            if (_lifecycle == Lifecycle.Closed)
            {
                throw new InvariantViolationException("A closed log does not fail.");
            }

            _lifecycle = Lifecycle.Faulted;
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
            _idle?.TrySetResult();
            _idle = null;
            Monitor.PulseAll(_lock);
        }

        foreach (var waiter in failed)
        {
            waiter.Fail(first);
        }

        space?.TrySetResult();
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
        int frameSize = WalFormat.FrameSize(payload.Length);
        if (_tailOffset + frameSize > _segmentRecordLimitBytes)
        {
            CutSegmentUnsynchronized(index);
        }

        if (_active.Length + frameSize > _active.Capacity)
        {
            if (_active.Length > 0 || _active.Waiters.Count > 0)
            {
                SealActiveUnsynchronized();
            }

            _active.EnsureCapacity(Math.Max(frameSize, _writeBufferSizeBytes));
        }

        var position = new WalPosition(_tailSequence, _tailOffset);
        var frame = _active.Reserve(frameSize);
        var payloadDestination = frame.Slice(WalFormat.FrameHeaderSizeBytes, payload.Length);
        payload.CopyTo(payloadDestination); // the one copy of the payload
        frame[(WalFormat.FrameHeaderSizeBytes + payload.Length)..].Clear();
        // The synced word: _durableEnd moves only after a flush has returned (Flush, CutSegment,
        // and Open, which flushes), so it never claims a byte that was not durable, however the
        // writer, the syncer and callers interleave. Taken now, under the lock, it may be older
        // than the flush that completes before this frame is written: conservative, never wrong.
        // While a cut is pending (the frame goes to a segment not yet created) it is 0.
        long syncedOffset = _durableEnd.Sequence == _tailSequence ? _durableEnd.Offset : 0;
        _tailCrc = WalFormat.WriteFrameHeader(frame, recordType, index, payloadDestination, _tailCrc, syncedOffset, _tailTag);
        _needsSyncMark = true;
        _tailOffset += frameSize;
        _bufferedBytes += frameSize;
        if (index != 0)
        {
            _lastIndex = index;
        }

        if (_active.EndOffset != _tailOffset)
        {
            throw new InvariantViolationException("The active batch must end at the tail.");
        }

        return position;
    }

    // ConfigureAwait(false) here and in CloseAsync never moves a deterministic host off its scheduler:
    // both awaits are reached only with a writer thread (WalThreading.CallerThread returns earlier),
    // whose completions already come from that thread.
    private async ValueTask<WalPosition> AppendWhenSpaceAsync(byte recordType, ReadOnlyMemory<byte> payload, ulong index, bool sync, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task? spaceAvailable = null;
            ValueTask<WalPosition> appended = default;
            lock (_lock)
            {
                ThrowIfUnusableUnsynchronized();
                if (_bufferedBytes == 0 || _bufferedBytes + WalFormat.FrameSize(payload.Length) <= _maxBufferedBytes)
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

            await SchedulerWaits.WaitAsync(spaceAvailable, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Ends the current segment logically: the lane's holder creates the next one after writing what precedes.</summary>
    private void CutSegmentUnsynchronized(ulong index)
    {
        long sequence = _tailSequence + 1;
        ulong firstIndex = index != 0 ? index : _lastIndex + 1;
        // Decided now, not when the write lane creates the file: the header and every frame after
        // it are encoded from here on, and a recycled segment's are tagged.
        bool recycled = _spare?.TryReserve() ?? false;
        byte[] header = WalFormat.BuildSegmentHeaderFrame(sequence, firstIndex, _tailCrc, recycled, out uint crc);
        _active.CutAfter = new SegmentCut(sequence, firstIndex, header, recycled);
        SealActiveUnsynchronized();
        _tailSequence = sequence;
        _tailOffset = header.Length;
        _tailCrc = crc;
        _tailTag = FrameTag.ForSegment(sequence, recycled);
        _segments.Add(new SegmentInfo(sequence, firstIndex, Path.Combine(_directory, WalFormat.SegmentFileName(sequence, firstIndex))));
        _active.Reset(sequence, _tailOffset, _writeBufferSizeBytes);
    }

    /// <summary>Queues the active batch for the writer and starts a new, empty one at the tail.</summary>
    private void SealActiveUnsynchronized()
    {
        _sealed.Enqueue(_active);
        _active = RentBatchUnsynchronized(_tailSequence, _tailOffset, _writeBufferSizeBytes);
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
        if (_writerThreadWaiting)
        {
            Monitor.PulseAll(_lock); // the syncer waits on the same monitor
        }
    }

    private void ThrowIfUnusableUnsynchronized()
    {
        switch (_lifecycle)
        {
            case Lifecycle.Open:
                return;
            case Lifecycle.Faulted:
                ThrowHelper.ThrowFaulted(_directory, _failure!);
                return;
            default:
                ObjectDisposedException.ThrowIf(true, typeof(WriteAheadLog));
                return;
        }
    }

    // ------------------------------------------------------------------ the steps: take work, write, publish, flush, complete

    private bool HasWorkUnsynchronized() => _sealed.Count > 0 || _active.NeedsSync || _drainRequested;

    /// <summary>Moves the sealed batches, and the active one when someone needs it written, to <see cref="_work"/>.</summary>
    private void MoveWorkUnsynchronized()
    {
        if (_writeLane is not (WriteLane.WriterThread or WriteLane.Caller))
        {
            throw new InvariantViolationException("Only the write lane's holder takes work.");
        }

        while (_sealed.Count > 0)
        {
            _work.Add(_sealed.Dequeue());
        }

        bool closing = _lifecycle == Lifecycle.Closing;
        if (_active.NeedsSync || _drainRequested || closing)
        {
            _active.NeedsSync |= closing;
            _finalGroupTaken |= closing;
            _work.Add(_active);
            _active = RentBatchUnsynchronized(_tailSequence, _tailOffset, _writeBufferSizeBytes);
        }

        _drainRequested = false;
    }

    /// <summary>
    /// Writes <see cref="_work"/>: one gather write per contiguous run of batches, publishing each
    /// run's end and waiters for the flush; at a segment cut the finished segment is flushed and
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
                if (!(_work[i + 1].Sequence == batch.Sequence && _work[i + 1].StartOffset == batch.EndOffset))
                {
                    throw new InvariantViolationException("Batches of one segment must be contiguous.");
                }

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
        long end = _work[last].EndOffset;
        AddZerosAheadOfQuietRun(offset, end, lastRunOfWork: last == _work.Count - 1);
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

    /// <summary>
    /// Counts the run from <paramref name="start"/> to <paramref name="end"/> as small or not (see
    /// <see cref="WriteAheadZerosMinQuietRuns"/>); when it ends past the blocks this log has written
    /// in the segment, closes <see cref="WriteAheadZerosMinQuietRuns"/> small runs in a row and
    /// nothing waits behind it, adds zeros to the gathered write, from the run's end to
    /// <see cref="WriteAheadZerosBytes"/> past its block, so the flushes after it overwrite written blocks (see
    /// <see cref="WriteAheadZerosBytes"/>). Only in a segment written over zeros (a recycled one's
    /// zeros limit is 0): the bytes after its tail are zeros already (a fresh segment, or a repaired
    /// tail), and zeros are what the scan's end and the torn-write rule expect there; they reach the
    /// disk in the run's own write and flush, so a crash leaves zeros or zeros.
    /// </summary>
    private void AddZerosAheadOfQuietRun(long start, long end, bool lastRunOfWork)
    {
        bool small = lastRunOfWork && end - start <= WriteAheadZerosMaxRunBytes;
        _quietRunsSinceZeros = small ? _quietRunsSinceZeros + 1 : 0;
        if (end <= _segmentWrittenEnd)
        {
            return;
        }

        // The lock only for a run that would get zeros: a busy log's large runs never take it here.
        if (_quietRunsSinceZeros >= WriteAheadZerosMinQuietRuns && end < _segmentZerosLimit && NothingWaitsBehindTheRun())
        {
            long blockEnd = (end + FileBlockBytes - 1) / FileBlockBytes * FileBlockBytes;
            long zerosEnd = Math.Min(blockEnd + WriteAheadZerosBytes, _segmentZerosLimit);
            _gather.Add(WalFormat.Zeros.AsMemory(0, checked((int)(zerosEnd - end)))); // at most 68 KiB: WalFormat.Zeros is that long
            end = zerosEnd;
            _quietRunsSinceZeros = 0;
        }
        else if (_quietRunsSinceZeros >= WriteAheadZerosMinQuietRuns)
        {
            _quietRunsSinceZeros = 0; // something waits behind it (or the segment's room is used up): count again
        }

        _segmentWrittenEnd = end;
    }

    /// <summary>
    /// True when nothing waits behind the run the write lane is about to write: no append buffered
    /// in the active batch or sealed, nobody asking for a drain, and no flush running (a writer
    /// thread's run while the syncer flushes the one before). Then the run's flush is the only one
    /// an appender waits for, and the zeros' bytes delay nobody queued behind them.
    /// </summary>
    private bool NothingWaitsBehindTheRun()
    {
        lock (_lock)
        {
            return _sealed.Count == 0 && _active.Length == 0 && !_active.NeedsSync && !_drainRequested && !IsFlushing;
        }
    }

    /// <summary>
    /// Starts the written-blocks bookkeeping of a segment file the write lane now writes, whose
    /// bytes below <paramref name="writtenEnd"/> are written (a recycled file's are all written:
    /// it gets no zeros ahead).
    /// </summary>
    private void SetSegmentFileWrittenTo(IStorageFile file, long writtenEnd, bool recycled)
    {
        _segmentWrittenEnd = writtenEnd;
        _quietRunsSinceZeros = WriteAheadZerosMinQuietRuns - 1;
        // Relative to the file: a segment created under another SegmentSizeBytes keeps its own
        // length, and its sync mark's and trailer's room is at its own end.
        _segmentZerosLimit = recycled ? 0 : Math.Min(_segmentRecordLimitBytes, file.Length - WalFormat.SegmentReservedEndBytes);
    }

    /// <summary>Records that batches <paramref name="first"/>..<paramref name="last"/> of <see cref="_work"/> are written, returns them to the pool and hands their waiters to the flush lane.</summary>
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
                if (end < _writtenEnd)
                {
                    throw new InvariantViolationException("Batches are written in log order.");
                }

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
                RequestFlushUnsynchronized();
                // A caller flushes its own group: waking the syncer would only cost it a context
                // switch on the latency path.
                if (_syncerThreadWaiting && _writeLane != WriteLane.Caller)
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
            while (IsFlushing && _failure is null)
            {
                Monitor.Wait(_lock); // the syncer may be flushing the finished segment
            }

            if (_failure is not null)
            {
                ThrowHelper.ThrowFaulted(_directory, _failure);
            }

            BeginCutUnsynchronized();
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

            FlushCoveredByCutUnsynchronized();
        }

        CompleteAll(_completions);
        var next = WalRecovery.CreateSegment(_fileSystem, _directory, _options, cut, _spare);
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
        SetSegmentFileWrittenTo(next, cut.HeaderFrame.Length, cut.Recycled);
        lock (_lock)
        {
            _segmentFile = next;
            _writtenEnd = _durableEnd = new WalPosition(cut.Sequence, cut.HeaderFrame.Length);
            EndCutUnsynchronized();
        }
    }

    /// <summary>What one flush covers: the file, the written position when it began, and how many waiters of <see cref="_awaitingSync"/> it completes.</summary>
    private readonly record struct FlushTarget(IStorageFile File, WalPosition WrittenEnd, int Waiters, bool NeedsFlush);

    /// <summary>
    /// Flushes (when anything is unflushed), advances the durable position and completes the
    /// waiters the flush covers. Throws what the file system threw (the log is faulted then);
    /// returns false when the log failed meanwhile (its waiters are failed then, and nothing is
    /// known durable).
    /// </summary>
    private bool Flush(FlushTarget target, List<WalAppendWaiter> completions)
    {
        if (target.NeedsFlush)
        {
            try
            {
                target.File.Flush();
            }
            catch (Exception e)
            {
                // Fault first: that fails the written waiters, so the lane may then go idle.
                Fail(e, includeWork: false);
                lock (_lock)
                {
                    EndFlushUnsynchronized();
                }

                throw;
            }
        }

        lock (_lock)
        {
            if (_failure is not null)
            {
                EndFlushUnsynchronized();
                return false; // Fail has failed the waiters already
            }

            if (!(target.WrittenEnd >= _durableEnd && target.WrittenEnd <= _writtenEnd))
            {
                throw new InvariantViolationException("A flush must not move the durable position back or past the written one.");
            }

            _durableEnd = target.WrittenEnd;
            for (int i = 0; i < target.Waiters; i++)
            {
                completions.Add(_awaitingSync.Dequeue());
            }

            _lastGroupWaiters = target.Waiters;
            EndFlushUnsynchronized();
        }

        CompleteAll(completions);
        return true;
    }

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

    /// <summary>
    /// At a clean close, when records were appended since the last sync mark and everything written
    /// is durable, appends a sync mark: a frame whose synced word is its own offset. It proves every
    /// record before it durable, so that Open refuses damage to the last records instead of taking
    /// it for a torn write (no later frame would claim them otherwise). Best effort: the records
    /// are durable already, and without the mark the documented bound still holds. Then closes the file.
    /// </summary>
    private void FinishSegmentFile()
    {
        TryWriteSyncMark();
        _segmentFile.Dispose();
    }

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
            mark = WalFormat.BuildSyncMarkFrame(offset, _tailCrc, _tailTag, out crc);
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
        if (offset + mark.Length > fileLength - WalFormat.SegmentTrailerSizeBytes)
        {
            throw new InvariantViolationException("Every segment keeps room for a sync mark before its trailer.");
        }

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
            CheckRulesUnsynchronized();
        }
    }

    // ------------------------------------------------------------------ driver: the calling thread

    /// <summary>
    /// True when the calling thread now holds the write lane, with the active batch (synced) and
    /// everything sealed taken as its work. With background threads, only when both lanes are idle,
    /// the log is open and the last group carried at most one waiter: that saves two thread
    /// hand-offs per synced append when appends do not overlap; under concurrency the appender
    /// does not write (its thread, usually a pool thread, would block in the flush while the other
    /// appenders' continuations wait for a thread, and the group behind it would be smaller). A lone
    /// append again after a burst goes to the writer thread once, then commits itself. With
    /// <see cref="WalThreading.CallerThread"/>, always: it waits for another caller's commit first,
    /// and throws if the log stopped meanwhile.
    /// </summary>
    private bool TryTakeCallerLaneUnsynchronized()
    {
        if (_callerThreadOnly)
        {
            while (_writeLane != WriteLane.Idle)
            {
                Monitor.Wait(_lock);
            }

            ThrowIfUnusableUnsynchronized();
        }
        else if (_writeLane != WriteLane.Idle || _flushLane != FlushLane.Idle || _lifecycle != Lifecycle.Open || _lastGroupWaiters > 1)
        {
            return false;
        }

        TakeWriteLaneUnsynchronized(WriteLane.Caller);
        _active.NeedsSync = true;
        MoveWorkUnsynchronized();
        return true;
    }

    /// <summary>The steps on the calling thread, for the work taken by <see cref="TryTakeCallerLaneUnsynchronized"/>; throws what the file system threw.</summary>
    private void CommitOnCallerThread()
    {
        try
        {
            WriteWork();
            FlushTarget target;
            lock (_lock)
            {
                target = BeginFlushUnsynchronized();
            }

            if (!Flush(target, _completions))
            {
                ThrowFaulted();
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
                ReleaseWriteLaneUnsynchronized(WriteLane.Caller);
                // Wake the threads only if they have something to do now (appends that arrived
                // meanwhile, a failure, closing); a lone append costs no context switch. Without
                // threads, other callers may wait for the lane.
                if (_callerThreadOnly || HasWorkUnsynchronized() || _flushLane != FlushLane.Idle || _lifecycle != Lifecycle.Open)
                {
                    Monitor.PulseAll(_lock);
                }
            }
        }
    }

    /// <summary>With <see cref="WalThreading.CallerThread"/>: writes and flushes what is buffered on the calling thread (back-pressure).</summary>
    private void DrainOnCallerThread()
    {
        lock (_lock)
        {
            _ = TryTakeCallerLaneUnsynchronized(); // always true in this mode, or throws
        }

        CommitOnCallerThread();
    }

    /// <summary>
    /// With <see cref="WalThreading.CallerThread"/>, what the writer thread does when it exits:
    /// writes and flushes everything appended, appends a sync mark, closes the segment. Never
    /// throws for the file system: a failure faults the log, and what was durable stays so.
    /// </summary>
    private void CloseOnCallerThread()
    {
        bool commit;
        lock (_lock)
        {
            while (_writeLane != WriteLane.Idle)
            {
                Monitor.Wait(_lock);
            }

            commit = _lifecycle == Lifecycle.Closing;
            if (commit)
            {
                TakeWriteLaneUnsynchronized(WriteLane.Caller);
                MoveWorkUnsynchronized();
            }
        }

        if (commit)
        {
            try
            {
                CommitOnCallerThread();
            }
            catch (Exception)
            {
                // The log is faulted (Fail ran); disposal does not throw for it.
            }
        }

        FinishSegmentFile();
        _writerExited.TrySetResult();
    }

    // ------------------------------------------------------------------ driver: the writer and syncer threads
    //
    // Two threads share the group commit so that writing the next group overlaps flushing the
    // previous one: the writer holds the write lane while it copies sealed batches into the page
    // cache (pwrite) and hands their waiters to the flush lane; the syncer flushes (fdatasync)
    // everything written when it begins and completes the waiters that flush covers. A flush makes
    // durable every write that returned before it began, which is why the flush notes the written
    // position when it begins.

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
                    lock (_lock)
                    {
                        ReleaseWriteLaneUnsynchronized(WriteLane.WriterThread);
                    }
                }
                catch (Exception e)
                {
                    // Whatever the failure (an IO error, a simulated crash), nothing after the last
                    // flush can be trusted: fail everyone waiting and stop.
                    Fail(e, includeWork: true);
                    lock (_lock)
                    {
                        // It fails after taking the lane (writing or cutting), or, on an invariant
                        // violation, before: release only what it holds.
                        if (_writeLane == WriteLane.WriterThread || (_writeLane == WriteLane.Cutting && _cutOwner == WriteLane.WriterThread))
                        {
                            ReleaseWriteLaneUnsynchronized(WriteLane.WriterThread);
                        }
                    }

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
                    _writerThreadDone = true;
                    Monitor.PulseAll(_lock);
                    // The syncer may still be flushing the segment file this thread closes.
                    while (!_syncerThreadExited)
                    {
                        Monitor.Wait(_lock);
                    }
                }

                FinishSegmentFile();
            }
            finally
            {
                lock (_lock)
                {
                    _idle?.TrySetResult();
                    _idle = null;
                }

                _writerExited.TrySetResult();
            }
        }
    }

    /// <summary>Waits for work and takes the write lane with it in <see cref="_work"/>. Returns false when the log failed, or is closing and nothing is left to write.</summary>
    private bool TakeWork()
    {
        lock (_lock)
        {
            while (true)
            {
                if (_lifecycle == Lifecycle.Faulted)
                {
                    return false;
                }

                // While a caller holds the lane the file is its; otherwise wait for work.
                if (_writeLane == WriteLane.Idle)
                {
                    bool closing = _lifecycle == Lifecycle.Closing;
                    if (HasWorkUnsynchronized() || (closing && !_finalGroupTaken))
                    {
                        break;
                    }

                    if (closing)
                    {
                        return false;
                    }
                }

                _writerThreadWaiting = true;
                SignalIdleUnsynchronized();
                Monitor.Wait(_lock);
                _writerThreadWaiting = false;
            }

            TakeWriteLaneUnsynchronized(WriteLane.WriterThread);
            MoveWorkUnsynchronized();
            return true;
        }
    }

    private void RunSyncer()
    {
        try
        {
            while (true)
            {
                FlushTarget target;
                try
                {
                    lock (_lock)
                    {
                        // A caller flushes its own group, and no flush starts during a cut.
                        while (_failure is null && !_writerThreadDone
                            && !(_flushLane == FlushLane.Requested && _writeLane is not (WriteLane.Cutting or WriteLane.Caller)))
                        {
                            _syncerThreadWaiting = true;
                            SignalIdleUnsynchronized();
                            Monitor.Wait(_lock);
                            _syncerThreadWaiting = false;
                        }

                        if (_failure is not null || _flushLane != FlushLane.Requested)
                        {
                            return; // failed, or the writer is done and nothing is left to flush
                        }

                        target = BeginFlushUnsynchronized();
                    }

                    _ = Flush(target, _syncCompletions);
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
                _syncerThreadExited = true;
                Monitor.PulseAll(_lock);
            }
        }
    }

    /// <summary>Completes <see cref="WhenIdleAsync"/> when nothing is left to write or flush.</summary>
    private void SignalIdleUnsynchronized()
    {
        if (_idle is not null && IsIdleUnsynchronized())
        {
            _idle.TrySetResult();
            _idle = null;
        }
    }

    private bool IsIdleUnsynchronized() =>
        (_writerThreadWaiting || _writerThreadDone) && (_syncerThreadWaiting || _syncerThreadExited)
        && _writeLane == WriteLane.Idle && _flushLane == FlushLane.Idle && !HasWorkUnsynchronized();

    private void ThrowFaulted()
    {
        Exception failure;
        lock (_lock)
        {
            failure = _failure!;
        }

        ThrowHelper.ThrowFaulted(_directory, failure);
    }

    private static class ThrowHelper
    {
        [DoesNotReturn]
        [MethodImpl(MethodImplOptions.NoInlining)]
        public static void ThrowFaulted(string directory, Exception failure) =>
            throw new StorageFaultedException(directory, failure);
    }
}
