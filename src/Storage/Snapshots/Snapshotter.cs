using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using EmbeddedRaft.Storage.IO;
using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Storage.Snapshots;

/// <summary>
/// Saves and loads snapshots in one directory, in the manner of etcd's <c>snap</c> package: one
/// file per snapshot named <c>%016x-%016x.snap</c> (term, index), checksummed throughout (format
/// in docs/formats.md, "Snapshot files").
/// </summary>
/// <remarks>
/// <para>Save is atomic: the file is written under a temporary name, flushed, renamed, and the
/// directory synced; a crash at any point leaves either the new snapshot whole or no trace of it
/// that loading would take, and the snapshots saved before untouched. After a save only the newest
/// <see cref="SnapshotOptions.RetainCount"/> snapshots are kept.</para>
/// <para>Load takes the newest snapshot that checks out end to end; a damaged one is renamed to
/// <c>*.broken</c> (never deleted) and the next newest is tried. Every such fallback is reported:
/// in the <see cref="SnapshotLoadResult.Quarantined"/> list the caller receives, and as a warning
/// through <see cref="SnapshotOptions.Logger"/>.</para>
/// <para>Data streams both ways through one chunk of memory, whatever the snapshot's size.</para>
/// <para>Thread-safety: calls on one instance are serialised by a gate that async callers wait for
/// asynchronously and can cancel the wait for. One instance per directory: the constructor takes an
/// exclusive lock on it (<c>snap.lock</c>), held until <see cref="Dispose"/> or <see cref="DisposeAsync"/>;
/// after that every call throws <see cref="ObjectDisposedException"/> naming <see cref="Snapshotter"/>.</para>
/// <para>IO: <see cref="IFileSystem"/> and <see cref="IStorageFile"/> are synchronous (one
/// abstraction shared with the write-ahead log, the B+tree and the tests' fault-injecting disk), so
/// the reads, writes, flushes and renames run synchronously on the thread that calls or resumes the
/// async method; what is asynchronous is every wait: for the gate, and for the caller's data
/// (<c>writeData</c> and the data stream of a save are awaited, chunk by chunk).</para>
/// <para>Scheduling: unlike the rest of this library, no await here uses <c>ConfigureAwait(false)</c>.
/// After a wait for the gate or for the caller's data, the file work resumes on the caller's
/// <see cref="SynchronizationContext"/> or <see cref="TaskScheduler.Current"/>: a Raft node on a
/// single-threaded (deterministic) scheduler saves and loads its snapshots on that scheduler, never
/// on the thread pool, so its runs do not depend on timing. Do not block synchronously on these
/// calls from a single-threaded context: the continuation would wait for the blocked thread.</para>
/// </remarks>
public sealed class Snapshotter : IDisposable, IAsyncDisposable
{
    private static readonly Action<ILogger, string, string, long, string, Exception?> s_logQuarantined =
        LoggerMessage.Define<string, string, long, string>(
            LogLevel.Warning,
            new EventId(1, "SnapshotQuarantined"),
            "Snapshot '{Path}' failed its checks and was renamed to '{BrokenPath}' (damage at offset {Offset}: {Reason}); an older snapshot, or none, is loaded instead.");

    private readonly IFileSystem _fileSystem;
    private readonly string _directory;
    private readonly SnapshotOptions _options;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly IDisposable _directoryLock;
    private bool _disposed; // written under _gate; read without it only to fail fast

    /// <summary>Creates a snapshotter for <paramref name="directory"/>, creating the directory when missing, and locks the directory.</summary>
    /// <exception cref="StorageLockedException">Another snapshotter (in this process or another) uses the directory.</exception>
    /// <exception cref="IOException"><paramref name="directory"/> is an existing regular file, or the file system failed.</exception>
    public Snapshotter(IFileSystem fileSystem, string directory, SnapshotOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(fileSystem);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        _fileSystem = fileSystem;
        _directory = directory;
        _options = options ?? SnapshotOptions.Default;
        if (fileSystem.FileExists(directory))
        {
            throw new IOException($"Cannot use '{directory}' for snapshots: it is a regular file, not a directory.");
        }

        _fileSystem.CreateDirectory(directory);
        _directoryLock = _fileSystem.AcquireExclusiveLock(Path.Combine(directory, SnapshotFormat.LockFileName));
    }

    /// <summary>The directory holding the snapshots.</summary>
    public string Directory => _directory;

    /// <summary>
    /// Saves a snapshot whose data <paramref name="writeData"/> writes to the stream it is given
    /// (write-only, not seekable; do not keep it). Returns the path once the snapshot is durable.
    /// </summary>
    /// <param name="metadata">What the snapshot covers; its term and index name the file.</param>
    /// <param name="writeData">Writes the data to the stream it is given, observing the token it is given.</param>
    /// <param name="cancellationToken">Cancels the wait for the gate and is passed to <paramref name="writeData"/>.</param>
    /// <exception cref="ArgumentException">The membership is larger than <see cref="SnapshotOptions.MaxMembershipSizeBytes"/>.</exception>
    /// <exception cref="IOException">The file system failed; the previous snapshots are untouched.</exception>
    /// <exception cref="ObjectDisposedException">The snapshotter was disposed (checked first, before the arguments).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled; a partial file is deleted.</exception>
    /// <remarks>If <paramref name="writeData"/> throws, the partial file is deleted and the exception propagates.</remarks>
    public async ValueTask<string> SaveAsync(SnapshotFileMetadata metadata, Func<Stream, CancellationToken, ValueTask> writeData, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(metadata);
        ArgumentNullException.ThrowIfNull(writeData);
        if (metadata.Membership.Length > _options.MaxMembershipSizeBytes)
        {
            throw new ArgumentException($"The membership blob ({metadata.Membership.Length} bytes) is larger than SnapshotOptions.MaxMembershipSizeBytes ({_options.MaxMembershipSizeBytes}).", nameof(metadata));
        }

        await EnterAsync(cancellationToken);
        try
        {
            string path = Path.Combine(_directory, SnapshotFormat.FileName(metadata.Term, metadata.Index));
            string temporary = path + SnapshotFormat.TempSuffix;
            using (var file = _fileSystem.Open(temporary, FileOpenMode.OpenOrCreate))
            {
                // A temporary file left by a crash holds nothing anyone relies on: start over.
                file.SetLength(0);
                uint headerCrc = WriteHeader(file, metadata);
                var stream = new SnapshotWriteStream(file, SnapshotFormat.FixedHeaderSizeBytes + metadata.Membership.Length + sizeof(uint), _options.ChunkSizeBytes);
                try
                {
                    await writeData(stream, cancellationToken);
                    stream.Complete(headerCrc);
                }
                catch
                {
                    file.Dispose();
                    _fileSystem.DeleteFile(temporary);
                    throw;
                }
                finally
                {
                    stream.Release();
                }

                file.Flush();
            }

            _fileSystem.Rename(temporary, path);
            _fileSystem.SyncDirectory(_directory);
            DeleteBeyondRetention();
            return path;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Saves a snapshot whose data is the rest of <paramref name="data"/>, copied through one buffer.</summary>
    /// <inheritdoc cref="SaveAsync(SnapshotFileMetadata, Func{Stream, CancellationToken, ValueTask}, CancellationToken)"/>
    public ValueTask<string> SaveAsync(SnapshotFileMetadata metadata, Stream data, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(data);
        return SaveAsync(metadata, (destination, token) => new ValueTask(data.CopyToAsync(destination, token)), cancellationToken);
    }

    /// <summary>
    /// Loads the newest valid snapshot. Each candidate, newest first (by index, then term), is
    /// checked end to end before it is returned; one that fails is renamed to <c>*.broken</c>, listed
    /// in <see cref="SnapshotLoadResult.Quarantined"/> (and logged as a warning), and the next is
    /// tried. Temporary files left by a save that crashed are deleted (they were never acknowledged
    /// and are never loaded).
    /// </summary>
    /// <param name="cancellationToken">Cancels the wait for the gate, and the check between two chunks
    /// (a cancelled load quarantines nothing it had not already set aside).</param>
    /// <returns>The snapshot (null when no valid one exists; the caller disposes it) and what was set aside to reach it.</returns>
    /// <exception cref="ObjectDisposedException">The snapshotter was disposed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    /// <exception cref="IOException">The file system failed (other than by corrupt contents).</exception>
    public async ValueTask<SnapshotLoadResult> LoadNewestAsync(CancellationToken cancellationToken = default)
    {
        await EnterAsync(cancellationToken);
        try
        {
            DeleteTemporaryFiles();
            var quarantined = new List<QuarantinedSnapshot>();
            foreach (var (path, term, index) in ListNewestFirst())
            {
                if (TryLoadUnderGate(path, term, index, quarantined, cancellationToken) is { } loaded)
                {
                    return new SnapshotLoadResult(loaded, quarantined);
                }
            }

            return new SnapshotLoadResult(null, quarantined);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Loads the snapshot with exactly this <paramref name="term"/> and <paramref name="index"/>,
    /// checked end to end like <see cref="LoadNewestAsync"/>: a damaged file is renamed to
    /// <c>*.broken</c>, listed in <see cref="SnapshotLoadResult.Quarantined"/> and logged. Nothing
    /// older is tried: a caller that knows which snapshot it needs (the consensus layer, whose log
    /// names the snapshot it installed) decides itself what to fall back to.
    /// </summary>
    /// <returns>The snapshot, or a null <see cref="SnapshotLoadResult.Snapshot"/> when no such file exists or it was quarantined. The caller disposes it.</returns>
    /// <exception cref="ObjectDisposedException">The snapshotter was disposed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    /// <exception cref="IOException">The file system failed (other than by corrupt contents).</exception>
    public async ValueTask<SnapshotLoadResult> LoadAsync(ulong term, ulong index, CancellationToken cancellationToken = default)
    {
        await EnterAsync(cancellationToken);
        try
        {
            var quarantined = new List<QuarantinedSnapshot>();
            string path = Path.Combine(_directory, SnapshotFormat.FileName(term, index));
            var loaded = _fileSystem.FileExists(path) ? TryLoadUnderGate(path, term, index, quarantined, cancellationToken) : null;
            return new SnapshotLoadResult(loaded, quarantined);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>The snapshot files (valid names only, unchecked), newest first; waits asynchronously for a save or load in progress.</summary>
    /// <exception cref="ObjectDisposedException">The snapshotter was disposed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the gate was taken.</exception>
    public async ValueTask<IReadOnlyList<string>> ListSnapshotsAsync(CancellationToken cancellationToken = default)
    {
        await EnterAsync(cancellationToken);
        try
        {
            return ListNewestFirst().Select(s => s.Path).ToList();
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Checks one snapshot end to end and opens its data, or quarantines it (listed in <paramref name="quarantined"/>, logged) and returns null. Holds the gate.</summary>
    private LoadedSnapshot? TryLoadUnderGate(string path, ulong term, ulong index, List<QuarantinedSnapshot> quarantined, CancellationToken cancellationToken)
    {
        try
        {
            long length;
            using (var check = SnapshotReadStream.OpenHeader(_fileSystem.Open(path, FileOpenMode.ReadOnly), _options.MaxMembershipSizeBytes))
            {
                if (check.Metadata.Term != term || check.Metadata.Index != index)
                {
                    throw new CorruptionException(path, 16, $"The header says index {check.Metadata.Index}, term {check.Metadata.Term}; the name says otherwise.");
                }

                length = check.VerifyToEnd(cancellationToken);
            }

            var data = SnapshotReadStream.OpenHeader(_fileSystem.Open(path, FileOpenMode.ReadOnly), _options.MaxMembershipSizeBytes);
            return new LoadedSnapshot(data, length);
        }
        catch (CorruptionException e)
        {
            string broken = Quarantine(path);
            quarantined.Add(new QuarantinedSnapshot(path, broken, e.Offset, e.Reason));
            s_logQuarantined(_options.Logger, path, broken, e.Offset, e.Reason, null);
            return null;
        }
    }

    private static uint WriteHeader(IStorageFile file, SnapshotFileMetadata metadata)
    {
        int membershipLength = metadata.Membership.Length;
        var header = new byte[SnapshotFormat.FixedHeaderSizeBytes + membershipLength + sizeof(uint)];
        BinaryPrimitives.WriteUInt64LittleEndian(header, SnapshotFormat.HeaderMagic);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(8), SnapshotFormat.Version);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(12), membershipLength);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(16), metadata.Index);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(24), metadata.Term);
        metadata.Membership.Span.CopyTo(header.AsSpan(SnapshotFormat.FixedHeaderSizeBytes));
        uint crc = Crc32C.Append(0, header.AsSpan(0, SnapshotFormat.FixedHeaderSizeBytes + membershipLength));
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(SnapshotFormat.FixedHeaderSizeBytes + membershipLength), crc);
        file.Write(0, header);
        return crc;
    }

    private List<(string Path, ulong Term, ulong Index)> ListNewestFirst()
    {
        var snapshots = new List<(string Path, ulong Term, ulong Index)>();
        foreach (string name in _fileSystem.ListFiles(_directory))
        {
            if (SnapshotFormat.TryParseFileName(name, out ulong term, out ulong index))
            {
                snapshots.Add((Path.Combine(_directory, name), term, index));
            }
        }

        snapshots.Sort((a, b) => b.Index != a.Index ? b.Index.CompareTo(a.Index) : b.Term.CompareTo(a.Term));
        return snapshots;
    }

    private void DeleteTemporaryFiles()
    {
        foreach (string name in _fileSystem.ListFiles(_directory))
        {
            if (name.EndsWith(SnapshotFormat.Extension + SnapshotFormat.TempSuffix, StringComparison.Ordinal))
            {
                _fileSystem.DeleteFile(Path.Combine(_directory, name));
            }
        }
    }

    private void DeleteBeyondRetention()
    {
        var snapshots = ListNewestFirst();
        if (snapshots.Count <= _options.RetainCount)
        {
            return;
        }

        foreach (var (path, _, _) in snapshots.Skip(_options.RetainCount))
        {
            _fileSystem.DeleteFile(path);
        }

        _fileSystem.SyncDirectory(_directory);
    }

    /// <summary>
    /// Releases the directory lock, after any call in progress returns (blocking the calling thread
    /// until then; <see cref="DisposeAsync"/> waits without blocking). Later calls throw
    /// <see cref="ObjectDisposedException"/>. Does nothing the second time.
    /// </summary>
    public void Dispose()
    {
        _gate.Wait();
        DisposeHoldingGate();
    }

    /// <summary>Releases the directory lock once any call in progress returns, waiting for it asynchronously. Later calls throw <see cref="ObjectDisposedException"/>.</summary>
    public async ValueTask DisposeAsync()
    {
        await _gate.WaitAsync();
        DisposeHoldingGate();
    }

    private void DisposeHoldingGate()
    {
        try
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _directoryLock.Dispose();
        }
        finally
        {
            // The semaphore itself is never disposed: a call racing with Dispose must meet
            // ObjectDisposedException naming the Snapshotter, not the SemaphoreSlim.
            _gate.Release();
        }
    }

    /// <summary>Fails fast, naming this type, once disposed (the check under the gate is the one that counts).</summary>
    private void ThrowIfDisposed()
    {
        if (Volatile.Read(ref _disposed))
        {
            ThrowDisposed();
        }
    }

    /// <summary>Takes the gate that serialises calls, waiting asynchronously; throws, naming this type, once disposed.</summary>
    private async ValueTask EnterAsync(CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        await SchedulerWaits.EnterAsync(_gate, cancellationToken);
        ThrowIfDisposedHoldingGate();
    }

    private void ThrowIfDisposedHoldingGate()
    {
        if (_disposed)
        {
            _gate.Release();
            ThrowDisposed();
        }
    }

    [DoesNotReturn]
    private void ThrowDisposed() =>
        throw new ObjectDisposedException(typeof(Snapshotter).FullName, $"The snapshotter of '{_directory}' was disposed.");

    /// <summary>Renames a snapshot that failed its checks aside and returns where it went.</summary>
    private string Quarantine(string path)
    {
        string broken = path + SnapshotFormat.BrokenSuffix;
        for (int attempt = 1; _fileSystem.FileExists(broken); attempt++)
        {
            if (attempt >= 1000)
            {
                throw new InvariantViolationException("Too many broken copies of one snapshot.");
            }

            broken = path + SnapshotFormat.BrokenSuffix + "." + attempt.ToString(CultureInfo.InvariantCulture);
        }

        _fileSystem.Rename(path, broken);
        _fileSystem.SyncDirectory(_directory);
        return broken;
    }
}
