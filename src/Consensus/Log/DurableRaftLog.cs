using System.Buffers;
using System.Globalization;
using EmbeddedRaft.Consensus.Membership;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Storage;
using EmbeddedRaft.Storage.IO;
using EmbeddedRaft.Storage.Snapshots;
using EmbeddedRaft.Storage.Wal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace EmbeddedRaft.Consensus.Log;

/// <summary>
/// The durable Raft log: an <see cref="IRaftStorage"/> kept in a <see cref="WriteAheadLog"/>
/// (<c>{directory}/wal</c>: entries, hard states, snapshot markers and the bootstrap configuration,
/// formats in docs/formats.md, "Durable Raft log records") and a <see cref="Snapshotter"/>
/// (<c>{directory}/snap</c>), in the manner of etcd's raftNode storage (wal + snap).
/// </summary>
/// <remarks>
/// <para>Opening. <see cref="OpenAsync"/> replays the write-ahead log front to back, applying each
/// record as the call that wrote it did (a suffix overwrite for entries at or below the last index,
/// as <see cref="Ready.Entries"/> demands), and takes as its snapshot the newest one that has a
/// marker in the log and whose file checks out (a snapshot file with no marker was received but
/// never installed and is ignored, as etcd does; a damaged one is quarantined by the snapshotter and
/// an older marked one used if the log still holds the entries after it). A log that contradicts
/// its hard state or snapshot (a commit index beyond the last entry, entries out of order, terms or
/// commit going backwards, a committed entry overwritten, a marker that disagrees with the entries)
/// is refused with a <see cref="CorruptionException"/> naming the segment file and offset of the
/// offending record. A torn tail is cut by the write-ahead log and logged.</para>
/// <para>Retained entries. <see cref="CompactAsync"/> keeps <see cref="DurableRaftLogOptions.RetainedEntries"/>
/// entries below the snapshot so that slightly slow followers get entries rather than the snapshot,
/// also after a reopen (<see cref="FirstIndex"/> may be below the snapshot index + 1). A
/// <see cref="RawNode"/> over the log starts applying after the snapshot index when the host passes
/// no applied index, so the retained entries are never applied twice.</para>
/// <para>Memory. Every entry keeps a small slot (term, size, type, position in the write-ahead log);
/// the entries themselves stay in memory while not yet durable or not yet committed (up to a ceiling),
/// and then only for the newest <see cref="DurableRaftLogOptions.CachedEntryBytes"/> of committed ones.
/// <see cref="Entries"/> reads older ones back from the write-ahead log by position (the same bytes).</para>
/// <para>Durability. <see cref="SaveAsync"/> writes one group of records (the entries, then the hard
/// state) and, when asked, one sync: a crash keeps a prefix of what was written, and every call that
/// completed with <c>sync</c> survives. <see cref="BootstrapAsync"/>, <see cref="ApplySnapshotAsync"/>,
/// <see cref="CompactAsync"/> and <see cref="SaveSnapshotDataAsync"/> are durable when they complete.</para>
/// <para>Thread-safety. The mutating calls (<see cref="SaveAsync"/>, <see cref="BootstrapAsync"/>,
/// <see cref="ApplySnapshotAsync"/>, <see cref="CompactAsync"/>, <see cref="SetAppliedIndex"/>) must
/// be made one at a time (a second one while another is in flight throws
/// <see cref="InvalidOperationException"/>). The <see cref="IRaftStorage"/> reads may come from another
/// thread at any time, also while a <see cref="SaveAsync"/> is in flight: the in-memory view is
/// updated when <see cref="SaveAsync"/> is called, before the write, so entries handed to it are
/// readable at once. <see cref="SaveSnapshotDataAsync"/> and <see cref="OpenSnapshotDataAsync"/> may run
/// beside everything else.</para>
/// <para>Failure. A failed write, flush or release stops the log for good (fail-stop: an fsync is
/// never retried, since the kernel may have dropped the dirty pages): that call and every later
/// mutating call throw <see cref="StorageFaultedException"/> whose inner exception is the first
/// failure. Dispose and reopen; opening recovers exactly what was durable.</para>
/// <para>Scheduling. No await here uses <c>ConfigureAwait(false)</c>: when an await really waits (the
/// snapshotter's gate, snapshot data arriving from a transfer), the rest of the call resumes on the
/// caller's <see cref="TaskScheduler.Current"/>, so a <see cref="Host.RaftNode{TResult}"/> on a
/// single-threaded scheduler does every write, flush and rename on that scheduler and a run on a
/// deterministic scheduler is a function of its inputs. Under <see cref="TaskScheduler.Default"/>
/// with no synchronization context this costs nothing.</para>
/// </remarks>
public sealed class DurableRaftLog : IRaftStorage, IAsyncDisposable, IDisposable
{
    /// <summary>The name of the <see cref="System.Diagnostics.Metrics.Meter"/> the log records to: fsync duration, write-ahead-log bytes, snapshot count and bytes, tagged <c>node.id</c>.</summary>
    public const string MeterName = "EmbeddedRaft.Storage";

    private const string WalDirectoryName = "wal";
    private const string SnapshotDirectoryName = "snap";
    private const string LockFileName = "raftlog.lock";

    private static readonly Action<ILogger, string, double, double, Exception?> s_logSlowFsync =
        LoggerMessage.Define<string, double, double>(
            LogLevel.Warning,
            new EventId(1, "SlowFsync"),
            "Flushing '{Path}' took {DurationMs} ms, over the slow-fsync threshold of {ThresholdMs} ms: the disk is slow or overloaded, and Raft's heartbeats and elections suffer.");

    private static readonly Action<ILogger, ulong, ulong, string, ulong, Exception?> s_logSnapshotFallback =
        LoggerMessage.Define<ulong, ulong, string, ulong>(
            LogLevel.Warning,
            new EventId(2, "SnapshotFallback"),
            "The snapshot at index {Index}, term {Term} named by the log's newest marker is unusable ({Reason}); opening from the older snapshot at index {FallbackIndex} and replaying the entries after it.");

    private static readonly Action<ILogger, string, long, long, Exception?> s_logOpened =
        LoggerMessage.Define<string, long, long>(
            LogLevel.Information,
            new EventId(3, "Opened"),
            "Raft log '{Directory}' opened: {EntryCount} entries after the snapshot or compaction point, {CachedBytes} bytes of them cached.");

    private static readonly Action<ILogger, string, ulong, Exception?> s_logUninstalledDeleted =
        LoggerMessage.Define<string, ulong>(
            LogLevel.Information,
            new EventId(4, "UninstalledSnapshotDeleted"),
            "Deleted '{Path}': a snapshot received but never installed (the log's snapshot is at index {InstalledIndex}).");

    private readonly Lock _lock = new();
    private readonly IFileSystem _fileSystem;
    private readonly string _directory;
    private readonly string _snapshotDirectory;
    private readonly DurableRaftLogOptions _options;
    private readonly IDisposable _directoryLock;
    private readonly WriteAheadLog _wal;
    private readonly Snapshotter _snapshotter;
    private readonly StorageMetrics _metrics;
    private readonly EntryTable _table;

    // Everything below is guarded by _lock.
    private HardState _hardState;
    private ConfState _bootstrapConfiguration;
    private SnapshotMetadata? _newestSnapshot;
    private bool _isEmpty;
    private ulong _appliedIndex;
    private ConfState? _appliedConfiguration; // null: the snapshot's
    private LoadedSnapshot? _snapshotLoadedAtOpen;
    private Exception? _fault;

    // 1 while a mutating call runs (they must not overlap); 1 once disposal started.
    private int _mutating;
    private int _disposed;

    // The deletion of released segments, chained (set by CompactAsync only: one mutating call at a time).
    private Task _release = Task.CompletedTask;
    private readonly object _releaseGate = new();
    private bool _releasing; // guarded by _releaseGate
    private bool _releaseStopped; // guarded by _releaseGate: a blocking Dispose started

    private DurableRaftLog(
        IFileSystem fileSystem,
        string directory,
        DurableRaftLogOptions options,
        IDisposable directoryLock,
        WriteAheadLog wal,
        Snapshotter snapshotter,
        StorageMetrics metrics,
        ReplayedLog replayed)
    {
        _fileSystem = fileSystem;
        _directory = directory;
        _snapshotDirectory = Path.Combine(directory, SnapshotDirectoryName);
        _options = options;
        _directoryLock = directoryLock;
        _wal = wal;
        _snapshotter = snapshotter;
        _metrics = metrics;
        _table = replayed.Table;
        _hardState = replayed.HardState;
        _bootstrapConfiguration = replayed.BootstrapConfiguration;
        _isEmpty = replayed.IsEmpty;
    }

    /// <summary>Nothing was ever written: the host must bootstrap a new cluster (<see cref="BootstrapAsync"/>) or wait to be added to one (a leader will send it entries or a snapshot).</summary>
    public bool IsEmpty
    {
        get
        {
            lock (_lock)
            {
                return _isEmpty;
            }
        }
    }

    /// <summary>The newest installed snapshot (one with a marker in the log, from <see cref="ApplySnapshotAsync"/> or <see cref="CompactAsync"/>); null when there is none.</summary>
    public SnapshotMetadata? NewestSnapshot
    {
        get
        {
            lock (_lock)
            {
                return _newestSnapshot;
            }
        }
    }

    /// <summary>For tests: the bytes of entries held in memory now.</summary>
    internal long CachedBytes
    {
        get
        {
            lock (_lock)
            {
                return _table.CachedBytes;
            }
        }
    }

    /// <summary>The directory holding <c>wal/</c> and <c>snap/</c>.</summary>
    public string Directory => _directory;

    /// <summary>
    /// Opens (creating when missing) the log in <paramref name="directory"/> and takes its lock.
    /// See the remarks of <see cref="DurableRaftLog"/> for what opening checks and repairs.
    /// </summary>
    /// <exception cref="StorageLockedException">Another open log uses the directory.</exception>
    /// <exception cref="CorruptionException">The log contradicts its hard state or snapshot, a record does not decode, or write-ahead-log damage a torn write cannot explain; names the file and offset. Nothing is repaired then.</exception>
    /// <exception cref="ArgumentException">The options break a rule between options (the snapshotter must keep at least 2 files; the write-ahead log's own rules).</exception>
    /// <exception cref="IOException">The file system failed.</exception>
    public static async ValueTask<DurableRaftLog> OpenAsync(
        IFileSystem fileSystem,
        string directory,
        DurableRaftLogOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(fileSystem);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        options ??= DurableRaftLogOptions.Default;
        options.Validate();
        cancellationToken.ThrowIfCancellationRequested();

        fileSystem.CreateDirectory(directory);
        var directoryLock = fileSystem.AcquireExclusiveLock(Path.Combine(directory, LockFileName));
        var metrics = new StorageMetrics(options.MetricsNodeId);
        WriteAheadLog? wal = null;
        Snapshotter? snapshotter = null;
        DurableRaftLog? log = null;
        try
        {
            var logger = options.Logger;
            var walOptions = options.Wal.Logger is NullLogger ? options.Wal with { Logger = logger } : options.Wal;
            var snapshotOptions = options.Snapshots.Logger is NullLogger ? options.Snapshots with { Logger = logger } : options.Snapshots;
            var threshold = options.SlowFsyncThreshold;
            var timed = new TimedFileSystem(fileSystem, options.TimeProvider, (path, duration) =>
            {
                metrics.RecordFsync(duration);
                if (duration >= threshold)
                {
                    s_logSlowFsync(logger, path, duration.TotalMilliseconds, threshold.TotalMilliseconds, null);
                }
            });

            wal = WriteAheadLog.Open(timed, Path.Combine(directory, WalDirectoryName), walOptions);
            snapshotter = new Snapshotter(fileSystem, Path.Combine(directory, SnapshotDirectoryName), snapshotOptions);
            var segmentPaths = wal.SegmentPaths;
            var replayed = LogReplay.Replay(wal, SegmentPathResolver(wal), anchored: ParseSegmentSequence(segmentPaths[0]) == 0);
            log = new DurableRaftLog(fileSystem, directory, options, directoryLock, wal, snapshotter, metrics, replayed);
            await log.ChooseSnapshotAsync(replayed.Markers, cancellationToken);
            await log.DeleteUninstalledSnapshotsAsync(replayed.Markers, cancellationToken);
            log.FillCacheFromLog();
            s_logOpened(logger, directory, log._table.Count, log._table.CachedBytes, null);
            return log;
        }
        catch
        {
            if (log is not null)
            {
                await log.DisposeAsync();
            }
            else
            {
                if (snapshotter is not null)
                {
                    await snapshotter.DisposeAsync();
                }

                if (wal is not null)
                {
                    await wal.DisposeAsync();
                }

                directoryLock.Dispose();
            }

            throw;
        }
    }

    /// <summary>
    /// Makes a new cluster's initial configuration durable: the log's first record. Only for an
    /// empty log (<see cref="IsEmpty"/>). Afterwards <see cref="Snapshot"/> and <see cref="InitialState"/>
    /// report <paramref name="initial"/> at index 0.
    /// </summary>
    /// <exception cref="InvalidOperationException">The log is not empty, or another mutating call is in flight.</exception>
    /// <exception cref="ArgumentException"><paramref name="initial"/> has no voter or is not a valid configuration.</exception>
    /// <exception cref="StorageFaultedException">The write failed now or earlier.</exception>
    public async ValueTask BootstrapAsync(ConfState initial, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(initial);
        var problem = initial.Voters.Count == 0 ? "it has no voter" : initial.Validate();
        if (problem is not null)
        {
            throw new ArgumentException($"Cannot bootstrap with {initial}: {problem}.", nameof(initial));
        }

        cancellationToken.ThrowIfCancellationRequested();
        BeginMutation();
        try
        {
            lock (_lock)
            {
                if (!_isEmpty)
                {
                    throw new InvalidOperationException($"The Raft log in '{_directory}' is not empty: only a new log is bootstrapped.");
                }

                _isEmpty = false;
                _bootstrapConfiguration = initial;
            }

            await WriteAsync(LogRecordType.Bootstrap, LogRecordCodec.EncodeBootstrap(initial), 0, sync: true);
        }
        finally
        {
            EndMutation();
        }
    }

    /// <summary>
    /// Sets the application's applied index after a restart (its consistent index), so that
    /// <see cref="InitialState"/> returns the configuration as of that index: the snapshot's,
    /// with the configuration changes of the entries in <c>(snapshot index, appliedIndex]</c>
    /// applied in order (the rules of <see cref="RawNode.ApplyConfChange"/>). Call it before
    /// creating the <see cref="RawNode"/>, and pass the same index as <see cref="RaftOptions.AppliedIndex"/>.
    /// Without a call the applied index is the snapshot's.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="appliedIndex"/> is below the snapshot index (restore the snapshot first) or beyond the last index.</exception>
    /// <exception cref="CorruptionException">A configuration change in that range does not apply to the configuration before it (names the segment and offset of the entry).</exception>
    public void SetAppliedIndex(ulong appliedIndex)
    {
        ThrowIfDisposed();
        lock (_lock)
        {
            var snapshot = SnapshotUnsynchronized();
            if (appliedIndex < snapshot.Index || appliedIndex > _table.LastIndex)
            {
                throw new ArgumentOutOfRangeException(
                    nameof(appliedIndex),
                    appliedIndex,
                    $"The applied index must lie between the snapshot index {snapshot.Index} and the last index {_table.LastIndex}; an application behind the snapshot restores it first.");
            }

            var configuration = snapshot.ConfState;
            for (ulong index = snapshot.Index + 1; index <= appliedIndex; index++)
            {
                ref readonly var slot = ref _table.Slot(index);
                if (slot.Type != EntryType.ConfChange)
                {
                    continue;
                }

                var entry = ReadEntriesUnsynchronized(index, index + 1)[0];
                try
                {
                    configuration = ConfChanger.Apply(configuration, MessageCodec.DecodeConfChange(entry.Data.Span));
                }
                catch (Exception e) when (e is ConfChangeRejectedException or MessageFormatException)
                {
                    throw new CorruptionException(SegmentPath(slot.Position.Sequence), slot.Position.Offset, $"The configuration change of entry {index} does not apply to {configuration}, the configuration before it: {e.Message}");
                }
            }

            _appliedIndex = appliedIndex;
            _appliedConfiguration = configuration;
        }
    }

    /// <summary>
    /// Persists a Ready's hard state and entries: the entries (those at or below the last index
    /// replace that suffix of the log, <see cref="Ready.Entries"/> semantics; those at or below the
    /// log's start are skipped), then the hard state, in one write, synced iff <paramref name="sync"/>.
    /// The entries are readable through <see cref="Entries"/>, <see cref="Term"/> and
    /// <see cref="LastIndex"/> as soon as this is called. Completes when durable (sync) or written to
    /// the log's buffers (a crash may then lose this call's records, and only later ones with them).
    /// </summary>
    /// <param name="hardState">The new hard state, or null when it did not change.</param>
    /// <param name="entries">Contiguous entries in index order.</param>
    /// <param name="sync">Whether to wait until durable (Raft needs it before sending votes and acknowledgements).</param>
    /// <param name="cancellationToken">Observed only before anything changes; once the entries are accepted they are written regardless.</param>
    /// <exception cref="ArgumentException">The entries leave a gap after the last index, are not contiguous, have terms going backwards, or replace a committed entry with another; or the hard state goes back (term, commit), changes its vote within a term, or commits beyond the last index. Nothing was changed.</exception>
    /// <exception cref="InvalidOperationException">Another mutating call is in flight.</exception>
    /// <exception cref="StorageFaultedException">A write or flush failed, now or earlier.</exception>
    public async ValueTask SaveAsync(HardState? hardState, ReadOnlyMemory<Entry> entries, bool sync, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        BeginMutation();
        try
        {
            ReadOnlyMemory<Entry> toWrite;
            lock (_lock)
            {
                toWrite = AcceptUnsynchronized(hardState, entries);
            }

            try
            {
                long bytes = 0;
                for (int i = 0; i < toWrite.Length; i++)
                {
                    var entry = toWrite.Span[i];
                    int length = 1 + entry.EncodedSizeBytes;
                    var buffer = ArrayPool<byte>.Shared.Rent(length);
                    WalPosition position;
                    try
                    {
                        MessageCodec.EncodeEntryInto(entry, buffer);
                        bytes += length;
                        position = await _wal.AppendAsync((byte)LogRecordType.Entry, buffer.AsMemory(0, length), entry.Index, sync: false, CancellationToken.None);
                    }
                    finally
                    {
                        // Returned only once the append completed: the log has copied the payload by then.
                        ArrayPool<byte>.Shared.Return(buffer);
                    }

                    lock (_lock)
                    {
                        // One mutating call at a time: nothing truncated the entry since it was accepted.
                        _table.Slot(entry.Index).Position = position;
                    }
                }

                if (hardState is { } state)
                {
                    var payload = MessageCodec.EncodeHardState(state);
                    bytes += payload.Length;
                    await _wal.AppendAsync((byte)LogRecordType.HardState, payload, 0, sync: false, CancellationToken.None);
                }

                _metrics.RecordWalBytes(bytes);
                if (sync)
                {
                    await _wal.SyncAsync(CancellationToken.None);
                }
            }
            catch (Exception e)
            {
                throw Fault(e);
            }

            lock (_lock)
            {
                EvictUnsynchronized();
            }
        }
        finally
        {
            EndMutation();
        }
    }

    /// <summary>
    /// Completes when everything earlier <see cref="SaveAsync"/> calls wrote is durable: the second
    /// half of a <see cref="SaveAsync"/> with <c>sync</c>, for a host that pipelines its writes
    /// (<see cref="Host.RaftNode{TResult}"/>: the next Ready's records are handed to the log while this
    /// waits). Not a mutating call: it may run beside the next <see cref="SaveAsync"/>, whose records
    /// it may or may not cover. A failure faults the log as a failed <see cref="SaveAsync"/> does.
    /// </summary>
    /// <exception cref="StorageFaultedException">A write or flush failed, now or earlier.</exception>
    internal async ValueTask SyncAsync()
    {
        ThrowIfFaulted();
        try
        {
            await _wal.SyncAsync(CancellationToken.None);
        }
        catch (Exception e)
        {
            throw Fault(e);
        }

        lock (_lock)
        {
            EvictUnsynchronized();
        }
    }

    /// <summary>
    /// Saves the data of a snapshot (the host's own, or one received from a leader) to the
    /// snapshotter, durably, streamed through one chunk of memory: <paramref name="writeData"/>
    /// writes it to the stream it is given. Does not change the log: <see cref="ApplySnapshotAsync"/>
    /// or <see cref="CompactAsync"/> then installs it (until then it is ignored at open). Only the
    /// snapshotter's <see cref="SnapshotOptions.RetainCount"/> newest files are kept.
    /// </summary>
    /// <exception cref="StorageFaultedException">The file system failed (the log stops: a failed flush is never retried), now or earlier.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled; the partial file is deleted.</exception>
    /// <remarks>An exception thrown by <paramref name="writeData"/> (a broken network stream, say) propagates as it is and leaves the log usable.</remarks>
    public async ValueTask SaveSnapshotDataAsync(SnapshotMetadata metadata, Func<Stream, CancellationToken, ValueTask> writeData, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        ArgumentNullException.ThrowIfNull(writeData);
        ThrowIfFaulted();
        Exception? callerFailure = null;
        string path;
        try
        {
            var fileMetadata = new SnapshotFileMetadata(metadata.Index, metadata.Term, MessageCodec.EncodeSnapshotMetadata(metadata));
            path = await _snapshotter.SaveAsync(
                fileMetadata,
                async (stream, token) =>
                {
                    try
                    {
                        await writeData(stream, token);
                    }
                    catch (Exception e)
                    {
                        callerFailure = e;
                        throw;
                    }
                },
                cancellationToken);
        }
        catch (IOException e) when (e != callerFailure)
        {
            throw Fault(e);
        }

        long length;
        using (var file = _fileSystem.Open(path, FileOpenMode.ReadOnly))
        {
            length = file.Length;
        }

        _metrics.RecordSnapshot(length);
    }

    /// <summary>
    /// Installs a snapshot from a leader (<see cref="Ready.Snapshot"/>): a durable marker, after
    /// which the log holds no entry and continues after <c>metadata.Index</c>, and
    /// <see cref="Snapshot"/> and <see cref="NewestSnapshot"/> return it. Call it before saving the
    /// same Ready's hard state and entries.
    /// </summary>
    /// <exception cref="InvalidOperationException">The snapshot's data was not saved with <see cref="SaveSnapshotDataAsync"/>, or another mutating call is in flight.</exception>
    /// <exception cref="SnapshotOutOfDateException">The snapshot is not newer than the one installed.</exception>
    /// <exception cref="ArgumentException">The snapshot lies below the persisted commit index (Raft installs only snapshots above it).</exception>
    /// <exception cref="StorageFaultedException">The write failed, now or earlier.</exception>
    public async ValueTask ApplySnapshotAsync(SnapshotMetadata metadata, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        cancellationToken.ThrowIfCancellationRequested();
        BeginMutation();
        try
        {
            lock (_lock)
            {
                ThrowIfFaulted();
                var current = SnapshotUnsynchronized();
                if (metadata.Index <= current.Index)
                {
                    throw new SnapshotOutOfDateException(metadata.Index, current.Index);
                }

                if (metadata.Index < _hardState.Commit)
                {
                    throw new ArgumentException($"The snapshot at index {metadata.Index} lies below the persisted commit index {_hardState.Commit}.", nameof(metadata));
                }
            }

            ThrowIfDataMissing(metadata);
            var marker = new SnapshotMarker(SnapshotMarkerKind.Installed, metadata, metadata.Index, metadata.Term, metadata.Index);
            lock (_lock)
            {
                _isEmpty = false;
                _table.Reset(metadata.Index, metadata.Term);
                _newestSnapshot = metadata;
                _appliedIndex = metadata.Index;
                _appliedConfiguration = null;
            }

            await WriteAsync(LogRecordType.SnapshotMarker, LogRecordCodec.EncodeMarker(marker), 0, sync: true);
        }
        finally
        {
            EndMutation();
        }
    }

    /// <summary>
    /// After the host's own snapshot at <c>metadata.Index</c> (data saved with
    /// <see cref="SaveSnapshotDataAsync"/>): a durable marker, after which <see cref="Snapshot"/>
    /// returns it; the entries up to <c>metadata.Index - RetainedEntries</c> are discarded and the
    /// write-ahead-log segments wholly below them deleted in the background once the call returns
    /// (the hard state is written again beside the marker, so nothing deleted is needed to reopen;
    /// <see cref="DisposeAsync"/> waits for the deletions).
    /// </summary>
    /// <exception cref="InvalidOperationException">The snapshot's data was not saved, or another mutating call is in flight.</exception>
    /// <exception cref="SnapshotOutOfDateException">The snapshot is not newer than the one installed.</exception>
    /// <exception cref="ArgumentException">The snapshot's index is beyond the last index, or its term is not the term of that entry.</exception>
    /// <exception cref="StorageFaultedException">A write or flush failed, now or earlier, or an earlier compaction's deletion failed (the segments are deleted after the call returns, off the caller's path).</exception>
    public async ValueTask CompactAsync(SnapshotMetadata metadata, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        cancellationToken.ThrowIfCancellationRequested();
        BeginMutation();
        try
        {
            SnapshotMarker marker;
            HardState hardState;
            lock (_lock)
            {
                ThrowIfFaulted();
                var current = SnapshotUnsynchronized();
                if (metadata.Index <= current.Index)
                {
                    throw new SnapshotOutOfDateException(metadata.Index, current.Index);
                }

                if (metadata.Index > _table.LastIndex || _table.TermAt(metadata.Index) != metadata.Term)
                {
                    throw new ArgumentException(
                        metadata.Index > _table.LastIndex
                            ? $"The snapshot index {metadata.Index} is beyond the last index {_table.LastIndex}."
                            : $"The snapshot says entry {metadata.Index} has term {metadata.Term}; the log holds term {_table.TermAt(metadata.Index)}.",
                        nameof(metadata));
                }

                ulong retained = Math.Min(metadata.Index, _options.RetainedEntries);
                ulong compactIndex = Math.Max(_table.Offset, metadata.Index - retained);
                marker = new SnapshotMarker(SnapshotMarkerKind.Compacted, metadata, compactIndex, _table.TermAt(compactIndex), _table.LastIndex);
                hardState = _hardState;
            }

            ThrowIfDataMissing(metadata);
            try
            {
                await _wal.AppendAsync((byte)LogRecordType.SnapshotMarker, LogRecordCodec.EncodeMarker(marker), 0, sync: false, CancellationToken.None);
                if (!hardState.IsEmpty)
                {
                    // The hard state records before the marker may sit in segments released below.
                    await _wal.AppendAsync((byte)LogRecordType.HardState, MessageCodec.EncodeHardState(hardState), 0, sync: false, CancellationToken.None);
                }

                await _wal.SyncAsync(CancellationToken.None);
            }
            catch (Exception e)
            {
                throw Fault(e);
            }

            lock (_lock)
            {
                _table.CompactTo(marker.CompactIndex, marker.CompactTerm);
                _newestSnapshot = metadata;
                if (_appliedIndex < metadata.Index)
                {
                    _appliedIndex = metadata.Index;
                    _appliedConfiguration = null;
                }
            }

            // Every entry after the compact index is in the segments kept: a later segment
            // starting at or below an entry's index would have overwritten it. The marker is
            // durable, so the segments before it may go at any time; deleting them (an unlink and
            // a directory sync each: 6 ms on average and up to 66 ms per compaction on the test VM,
            // session 14) is not the caller's wait: a Raft host compacts on its loop.
            _release = ReleaseSegmentsAsync(_release, marker.CompactIndex + 1);
        }
        finally
        {
            EndMutation();
        }
    }

    /// <summary>For tests: completes when the segments released by the compactions so far are deleted (or their deletion failed and faulted the log).</summary>
    internal Task WhenSegmentsReleasedAsync() => _release;

    /// <summary>
    /// Deletes the write-ahead-log segments before <paramref name="index"/> after the earlier
    /// compactions' deletions, off the caller's path: queued to <see cref="TaskScheduler.Current"/>
    /// (the thread pool, or a deterministic host's own scheduler, where it runs at a point the
    /// scheduler chooses). Never throws: a failure faults the log (fail-stop), and the next
    /// mutating call throws it. <see cref="DisposeAsync"/> waits for it; a blocking <see cref="Dispose"/>
    /// waits only for one running on another thread, and one not started yet then skips (a later
    /// open's compaction deletes those segments, replayed and ignored until then, as after a crash
    /// before the deletion).
    /// </summary>
    private async Task ReleaseSegmentsAsync(Task previous, ulong index)
    {
        await previous;
        await Task.Yield();
        lock (_releaseGate)
        {
            if (_releaseStopped)
            {
                return;
            }

            _releasing = true;
        }

        try
        {
            _wal.ReleaseBefore(index);
        }
        catch (Exception e)
        {
            Fault(e);
        }
        finally
        {
            lock (_releaseGate)
            {
                _releasing = false;
                Monitor.PulseAll(_releaseGate);
            }
        }
    }

    /// <summary>Blocking disposal: waits for a segment deletion running now (on another thread); one not started yet sees the stop and skips.</summary>
    private void StopReleases()
    {
        lock (_releaseGate)
        {
            _releaseStopped = true;
            while (_releasing)
            {
                Monitor.Wait(_releaseGate);
            }
        }
    }

    /// <summary>
    /// A readable, forward-only stream over the saved data of the snapshot at <paramref name="index"/>
    /// (to stream to a follower, or to restore the state machine), checked as it is read. The caller
    /// disposes it. Memory use is one chunk whatever the snapshot's size.
    /// </summary>
    /// <exception cref="FileNotFoundException">No snapshot data is saved at that index.</exception>
    /// <exception cref="CorruptionException">The file is damaged (it was quarantined).</exception>
    public async ValueTask<Stream> OpenSnapshotDataAsync(ulong index, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        lock (_lock)
        {
            if (_snapshotLoadedAtOpen is { } loaded && loaded.Metadata.Index == index)
            {
                // Checked end to end at open already: the restore right after open reads it once more, not twice.
                _snapshotLoadedAtOpen = null;
                return loaded.Data;
            }
        }

        var paths = await _snapshotter.ListSnapshotsAsync(cancellationToken);
        foreach (var path in paths)
        {
            if (TryParseSnapshotFileName(Path.GetFileName(path), out ulong term, out ulong fileIndex) && fileIndex == index)
            {
                var result = await _snapshotter.LoadAsync(term, fileIndex, cancellationToken);
                if (result.Snapshot is { } snapshot)
                {
                    return snapshot.Data;
                }

                if (result.Quarantined.Count > 0)
                {
                    var broken = result.Quarantined[0];
                    throw new CorruptionException(broken.Path, broken.Offset, $"{broken.Reason} (quarantined as '{broken.BrokenPath}')");
                }
            }
        }

        throw new FileNotFoundException($"No snapshot data is saved at index {index} in '{_snapshotDirectory}'.");
    }

    /// <inheritdoc/>
    public (HardState HardState, ConfState ConfState) InitialState()
    {
        lock (_lock)
        {
            return (_hardState, _appliedConfiguration ?? SnapshotUnsynchronized().ConfState);
        }
    }

    /// <inheritdoc/>
    /// <remarks>Returns a new array each call; entries no longer cached are read back from the write-ahead log.</remarks>
    /// <exception cref="CorruptionException">An entry read back from the write-ahead log is damaged.</exception>
    public ReadOnlyMemory<Entry> Entries(ulong low, ulong high, ulong maxSizeBytes)
    {
        lock (_lock)
        {
            if (low <= _table.Offset)
            {
                throw new LogCompactedException(low, _table.Offset + 1);
            }

            if (high > _table.LastIndex + 1 || low > high)
            {
                throw new EntriesUnavailableException(high - 1, _table.LastIndex);
            }

            if (low == high)
            {
                return ReadOnlyMemory<Entry>.Empty;
            }

            // Size the answer from the slots first, so that only entries returned are read.
            ulong end = low + 1;
            ulong size = (ulong)_table.Slot(low).SizeBytes;
            while (end < high)
            {
                size += (ulong)_table.Slot(end).SizeBytes;
                if (size > maxSizeBytes)
                {
                    break;
                }

                end++;
            }

            return ReadEntriesUnsynchronized(low, end);
        }
    }

    /// <inheritdoc/>
    public ulong Term(ulong index)
    {
        lock (_lock)
        {
            if (index < _table.Offset)
            {
                throw new LogCompactedException(index, _table.Offset + 1);
            }

            if (index > _table.LastIndex)
            {
                throw new EntriesUnavailableException(index, _table.LastIndex);
            }

            return _table.TermAt(index);
        }
    }

    /// <inheritdoc/>
    public ulong LastIndex()
    {
        lock (_lock)
        {
            return _table.LastIndex;
        }
    }

    /// <summary>
    /// The first index whose entry the log holds in memory (its cache): every entry from here to the
    /// last index may be handed out again as the same object; <c>LastIndex() + 1</c> when none is.
    /// Entries below it are read back from the WAL into new arrays.
    /// </summary>
    internal ulong CacheFirstIndex
    {
        get
        {
            lock (_lock)
            {
                return _table.CacheFirst;
            }
        }
    }

    /// <inheritdoc/>
    public ulong FirstIndex()
    {
        lock (_lock)
        {
            return _table.Offset + 1;
        }
    }

    /// <inheritdoc/>
    /// <remarks>The newest installed snapshot; before any, index 0 with the bootstrap configuration (empty when the log was not bootstrapped).</remarks>
    public SnapshotMetadata Snapshot()
    {
        lock (_lock)
        {
            return SnapshotUnsynchronized();
        }
    }

    /// <summary>Writes and syncs what was appended, closes the files and releases the directory. Never throws for a log that already failed. Later calls do nothing.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        LoadedSnapshot? loaded;
        lock (_lock)
        {
            loaded = _snapshotLoadedAtOpen;
            _snapshotLoadedAtOpen = null;
        }

        if (loaded is not null)
        {
            await loaded.DisposeAsync();
        }

        await _release;
        try
        {
            await _wal.DisposeAsync();
            await _snapshotter.DisposeAsync();
        }
        finally
        {
            _directoryLock.Dispose();
        }
    }

    /// <summary>Like <see cref="DisposeAsync"/>, blocking.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        LoadedSnapshot? loaded;
        lock (_lock)
        {
            loaded = _snapshotLoadedAtOpen;
            _snapshotLoadedAtOpen = null;
        }

        loaded?.Dispose();
        StopReleases();
        try
        {
            _wal.Dispose();
            _snapshotter.Dispose();
        }
        finally
        {
            _directoryLock.Dispose();
        }
    }

    /// <summary>The sequence number in a segment file's name (<c>%016x-%016x.wal</c>, docs/formats.md).</summary>
    internal static long ParseSegmentSequence(string path)
    {
        var name = Path.GetFileName(path);
        if (name.Length < 16 || !long.TryParse(name.AsSpan(0, 16), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out long sequence))
        {
            throw new InvariantViolationException($"The write-ahead log listed '{path}', which is not a segment file name.");
        }

        return sequence;
    }

    /// <summary>Parses a snapshot file name, <c>%016x-%016x.snap</c> (term, index; docs/formats.md).</summary>
    internal static bool TryParseSnapshotFileName(string name, out ulong term, out ulong index)
    {
        term = 0;
        index = 0;
        return name.Length == 38
            && name.EndsWith(".snap", StringComparison.Ordinal)
            && name[16] == '-'
            && ulong.TryParse(name.AsSpan(0, 16), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out term)
            && ulong.TryParse(name.AsSpan(17, 16), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out index);
    }

    private static Func<long, string> SegmentPathResolver(WriteAheadLog wal)
    {
        var bySequence = new Dictionary<long, string>();
        foreach (var path in wal.SegmentPaths)
        {
            bySequence[ParseSegmentSequence(path)] = path;
        }

        return sequence => bySequence.TryGetValue(sequence, out var path) ? path : Path.Combine(wal.Directory, sequence.ToString("x16", CultureInfo.InvariantCulture) + "-?.wal");
    }

    private string SegmentPath(long sequence) => SegmentPathResolver(_wal)(sequence);

    /// <summary>
    /// Drops durable entries from memory (the cache policy of <see cref="DurableRaftLogOptions.CachedEntryBytes"/>):
    /// committed ones beyond the byte limit, and any beyond the ceiling. Entries above the commit
    /// index are the ones read again soon (applied once committed, sent to followers until they
    /// acknowledge); committed ones are read again only by a follower that fell behind, from the
    /// write-ahead log then. Holding committed entries for long would keep each one's data (an
    /// object of its own, typically the proposer's buffer) alive across collections into gen2, to
    /// die there (session 14: nearly every proposal's bytes promoted to gen2 with the 64 MiB cache
    /// of before, at 256 and 1,024 proposals in flight).
    /// </summary>
    private void EvictUnsynchronized() =>
        _table.Evict(
            _options.CachedEntryBytes,
            Math.Max(_options.CachedEntryBytes, _options.UncommittedCacheCeilingBytes),
            _wal.DurablePosition,
            _hardState.Commit);

    private SnapshotMetadata SnapshotUnsynchronized() => _newestSnapshot ?? new SnapshotMetadata(0, 0, _bootstrapConfiguration);

    /// <summary>
    /// Checks a Ready's hard state and entries against the log (the rules <see cref="LogReplay"/>
    /// enforces at open, so that nothing written is refused later) and applies them to the
    /// in-memory view. Returns the entries to write (those above the log's start).
    /// </summary>
    private ReadOnlyMemory<Entry> AcceptUnsynchronized(HardState? hardState, ReadOnlyMemory<Entry> entries)
    {
        ThrowIfFaulted();
        var span = entries.Span;
        int skip = 0;
        while (skip < span.Length && span[skip].Index <= _table.Offset)
        {
            skip++;
        }

        var toWrite = entries[skip..];
        span = toWrite.Span;
        ulong lastAfter = _table.LastIndex;
        if (span.Length > 0)
        {
            ulong first = span[0].Index;
            if (first > _table.LastIndex + 1)
            {
                throw new ArgumentException($"Missing log entries: the last index is {_table.LastIndex}, the entries start at {first}.", nameof(entries));
            }

            for (int i = 0; i < span.Length; i++)
            {
                if (span[i].Index != first + (ulong)i)
                {
                    throw new ArgumentException($"The entries are not contiguous: entry {i} has index {span[i].Index}, not {first + (ulong)i}.", nameof(entries));
                }

                ulong previousTerm = i > 0 ? span[i - 1].Term : _table.TermAt(first - 1);
                if (span[i].Term < previousTerm)
                {
                    throw new ArgumentException($"Entry {span[i].Index} has term {span[i].Term}, below the term {previousTerm} of the entry before it.", nameof(entries));
                }

                ulong index = span[i].Index;
                if (index <= _table.LastIndex && index <= _hardState.Commit && _table.TermAt(index) != span[i].Term)
                {
                    throw new ArgumentException($"Entry {index} (term {span[i].Term}) would replace the committed entry of term {_table.TermAt(index)} (commit index {_hardState.Commit}).", nameof(entries));
                }
            }

            lastAfter = span[^1].Index;
        }

        if (hardState is { } next && LogReplay.HardStateError(_hardState, next, Math.Max(lastAfter, SnapshotUnsynchronized().Index)) is { } error)
        {
            throw new ArgumentException(error, nameof(hardState));
        }

        if (span.Length > 0)
        {
            if (span[0].Index <= _table.LastIndex)
            {
                _table.TruncateFrom(span[0].Index);
            }

            foreach (ref readonly var entry in span)
            {
                _table.Append(entry, EntrySlot.Unknown, cache: true);
            }
        }

        if (hardState is { } accepted)
        {
            _hardState = accepted;
        }

        if (span.Length > 0 || hardState is not null)
        {
            _isEmpty = false;
        }

        return toWrite;
    }

    /// <summary>Entries <c>[low, high)</c>, all in the table: the cached ones from memory, older ones read back from the write-ahead log.</summary>
    private Entry[] ReadEntriesUnsynchronized(ulong low, ulong high)
    {
        var result = new Entry[high - low];
        ulong cacheFirst = Math.Max(low, Math.Min(high, _table.CacheFirst));
        if (low < cacheFirst)
        {
            ReadFromWal(low, cacheFirst, result);
            _metrics.RecordEntriesReadBack((long)(cacheFirst - low));
        }

        for (ulong index = cacheFirst; index < high; index++)
        {
            if (!_table.TryGetCached(index, out result[index - low]))
            {
                throw new InvariantViolationException($"Entry {index} is at or after the cache's first index {_table.CacheFirst} but not cached.");
            }
        }

        return result;
    }

    /// <summary>
    /// Reads entries <c>[low, high)</c> back from the write-ahead log into <paramref name="destination"/>.
    /// Live entries lie in increasing position order (an entry written later at a lower or equal
    /// index truncated everything after it), but dead ones (overwritten) may lie between them: an
    /// entry is taken only from the record at its slot's position.
    /// </summary>
    private void ReadFromWal(ulong low, ulong high, Entry[] destination)
    {
        var start = _table.Slot(low).Position;
        using var reader = _wal.ReadFrom(start);
        ulong next = low;
        while (next < high && reader.TryReadNext(out var record))
        {
            if (record.Type != (byte)LogRecordType.Entry || record.Index != next || record.Position != _table.Slot(next).Position)
            {
                continue;
            }

            Entry entry;
            try
            {
                entry = MessageCodec.DecodeEntry(record.Payload.Span);
            }
            catch (MessageFormatException e)
            {
                throw new CorruptionException(SegmentPath(record.Position.Sequence), record.Position.Offset, $"Entry {next} does not decode: {e.Message}");
            }

            if (entry.Index != next || entry.Term != _table.Slot(next).Term)
            {
                throw new CorruptionException(SegmentPath(record.Position.Sequence), record.Position.Offset, $"The record read back for entry {next} holds entry {entry.Index} of term {entry.Term}.");
            }

            destination[next - low] = entry;
            next++;
        }

        if (next < high)
        {
            var missing = _table.Slot(next).Position;
            throw new CorruptionException(SegmentPath(missing.Sequence), missing.Offset, $"Entry {next} is not in the write-ahead log where the log recorded it.");
        }
    }

    /// <summary>
    /// Takes the newest snapshot with a marker whose file checks out; falls back to an older marked
    /// one when the newest is missing or damaged, if the log still holds every entry after it.
    /// </summary>
    private async ValueTask ChooseSnapshotAsync(IReadOnlyList<(SnapshotMarker Marker, WalPosition Position)> markers, CancellationToken cancellationToken)
    {
        string? firstProblem = null;
        string? firstPath = null;
        long firstOffset = 0;
        for (int i = markers.Count - 1; i >= 0; i--)
        {
            var metadata = markers[i].Marker.Metadata;
            if (metadata.Index < _table.Offset || metadata.Index > _table.LastIndex || (metadata.Index > _table.Offset && _table.TermAt(metadata.Index) != metadata.Term))
            {
                // The log no longer holds the entries after this snapshot: it cannot be the start.
                break;
            }

            var result = await _snapshotter.LoadAsync(metadata.Term, metadata.Index, cancellationToken);
            string? problem = null;
            if (result.Snapshot is { } loaded)
            {
                if (!MembershipMatches(loaded.Metadata.Membership.Span, metadata))
                {
                    problem = "its file's metadata differs from the marker's";
                    await loaded.DisposeAsync();
                }
                else
                {
                    if (i != markers.Count - 1)
                    {
                        var newest = markers[^1].Marker.Metadata;
                        s_logSnapshotFallback(_options.Logger, newest.Index, newest.Term, firstProblem!, metadata.Index, null);
                    }

                    lock (_lock)
                    {
                        // The retained tail below the snapshot (the marker's compact index on) stays:
                        // slow followers still get entries after a restart, and RawNode starts
                        // applying after the snapshot index, not after FirstIndex - 1.
                        _newestSnapshot = metadata;
                        _appliedIndex = metadata.Index;
                        _snapshotLoadedAtOpen = loaded;
                    }

                    return;
                }
            }
            else
            {
                problem = result.Quarantined.Count > 0
                    ? $"its file failed its checks at offset {result.Quarantined[0].Offset}: {result.Quarantined[0].Reason}; quarantined as '{result.Quarantined[0].BrokenPath}'"
                    : "its file is missing";
            }

            if (firstProblem is null)
            {
                firstProblem = problem;
                firstPath = Path.Combine(_snapshotDirectory, $"{metadata.Term:x16}-{metadata.Index:x16}.snap");
                firstOffset = result.Quarantined.Count > 0 ? result.Quarantined[0].Offset : 0;
            }
        }

        if (markers.Count > 0)
        {
            var newest = markers[^1];
            throw new CorruptionException(
                firstPath!,
                firstOffset,
                $"The log starts from the snapshot at index {newest.Marker.Metadata.Index} (marker in '{SegmentPath(newest.Position.Sequence)}' at offset {newest.Position.Offset}), but {firstProblem}, and no older snapshot with the entries after it remains.");
        }
    }

    /// <summary>
    /// Deletes the snapshot files newer than the log's snapshot that no marker names: received
    /// from a leader but never installed, they are useless after a restart (the leader sends a
    /// fresh one), and left in place they would count against the snapshotter's retention and push
    /// the installed snapshot's file out. A marked file passed over at open is kept for an operator.
    /// </summary>
    private async ValueTask DeleteUninstalledSnapshotsAsync(IReadOnlyList<(SnapshotMarker Marker, WalPosition Position)> markers, CancellationToken cancellationToken)
    {
        ulong installed = SnapshotUnsynchronized().Index;
        var marked = markers.Select(m => (m.Marker.Metadata.Term, m.Marker.Metadata.Index)).ToHashSet();
        bool deleted = false;
        foreach (var path in await _snapshotter.ListSnapshotsAsync(cancellationToken))
        {
            if (TryParseSnapshotFileName(Path.GetFileName(path), out ulong term, out ulong index) && index > installed && !marked.Contains((term, index)))
            {
                _fileSystem.DeleteFile(path);
                deleted = true;
                s_logUninstalledDeleted(_options.Logger, path, installed, null);
            }
        }

        if (deleted)
        {
            _fileSystem.SyncDirectory(_snapshotDirectory);
        }
    }

    private static bool MembershipMatches(ReadOnlySpan<byte> membership, SnapshotMetadata marker)
    {
        try
        {
            var fromFile = MessageCodec.DecodeSnapshotMetadata(membership);
            return fromFile.Index == marker.Index && fromFile.Term == marker.Term && fromFile.ConfState.Equals(marker.ConfState);
        }
        catch (MessageFormatException)
        {
            return false;
        }
    }

    /// <summary>Reads the newest entries, up to <see cref="DurableRaftLogOptions.CachedEntryBytes"/>, into the cache after replay.</summary>
    private void FillCacheFromLog()
    {
        lock (_lock)
        {
            ulong first = _table.LastIndex + 1;
            long bytes = 0;
            while (first > _table.Offset + 1)
            {
                long size = _table.Slot(first - 1).SizeBytes;
                if (bytes + size > _options.CachedEntryBytes)
                {
                    break;
                }

                bytes += size;
                first--;
            }

            if (first <= _table.LastIndex)
            {
                var entries = new Entry[_table.LastIndex + 1 - first];
                ReadFromWal(first, _table.LastIndex + 1, entries);
                _table.FillCache(entries);
            }
        }
    }

    private void ThrowIfDataMissing(SnapshotMetadata metadata)
    {
        var path = Path.Combine(_snapshotDirectory, $"{metadata.Term:x16}-{metadata.Index:x16}.snap");
        if (!_fileSystem.FileExists(path))
        {
            throw new InvalidOperationException($"The data of the snapshot at index {metadata.Index}, term {metadata.Term} was not saved ('{path}' does not exist): call {nameof(SaveSnapshotDataAsync)} first.");
        }
    }

    /// <summary>Appends one record and syncs; a failure faults the log.</summary>
    private async ValueTask WriteAsync(LogRecordType type, byte[] payload, ulong index, bool sync)
    {
        try
        {
            await _wal.AppendAsync((byte)type, payload, index, sync, CancellationToken.None);
            _metrics.RecordWalBytes(payload.Length);
        }
        catch (Exception e)
        {
            throw Fault(e);
        }
    }

    /// <summary>Records the first failure and returns the exception for the caller to throw.</summary>
    private StorageFaultedException Fault(Exception failure)
    {
        lock (_lock)
        {
            _fault ??= failure is StorageFaultedException { InnerException: { } inner } ? inner : failure;
            return failure as StorageFaultedException ?? new StorageFaultedException(_directory, _fault);
        }
    }

    private void ThrowIfFaulted()
    {
        ThrowIfDisposed();
        Exception? fault;
        lock (_lock)
        {
            fault = _fault;
        }

        if (fault is not null)
        {
            throw new StorageFaultedException(_directory, fault);
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    private void BeginMutation()
    {
        ThrowIfFaulted();
        if (Interlocked.Exchange(ref _mutating, 1) != 0)
        {
            throw new InvalidOperationException("Another call that changes the Raft log is in flight: SaveAsync, BootstrapAsync, ApplySnapshotAsync and CompactAsync must be called one at a time.");
        }
    }

    private void EndMutation() => Volatile.Write(ref _mutating, 0);
}
