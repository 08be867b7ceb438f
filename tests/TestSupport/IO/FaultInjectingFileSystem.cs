using EmbeddedRaft.Storage;
using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.TestSupport.IO;

/// <summary>
/// An in-memory <see cref="IFileSystem"/> that models a real disk closely enough to prove crash
/// safety against it, deterministically for a seed.
/// </summary>
/// <remarks>
/// <para>Model. Each file keeps a durable image (what survives a crash) and a current image (what
/// reads see now). Writes, length changes and preallocations go to the current image and are
/// remembered as pending until <see cref="IStorageFile.Flush"/> applies them to the durable image.
/// Directory entries likewise have a durable and a current view: creating, renaming and deleting a
/// file changes only the current view until <see cref="SyncDirectory"/>.</para>
/// <para>Crash. <see cref="Crash"/> (or reaching <see cref="CrashAfterOperation"/>) makes every later
/// call throw <see cref="SimulatedCrashException"/>. <see cref="Restart"/> then rebuilds the disk
/// from the durable images, and for each pending write — independently, with choices drawn from
/// the seed — keeps it, drops it, or tears it: a random subset of its 512-byte sectors reaches the
/// disk. Pending length changes are kept or dropped. Directory views fall back to their durable
/// state, so an unsynced create or rename may vanish. Directories themselves are durable at once.</para>
/// <para>Faults. <see cref="FailWhen"/> makes chosen operations throw <see cref="IOException"/>
/// without effect; <see cref="FlipBit"/> corrupts a byte on the durable and current images alike.</para>
/// <para>Thread-safe: one lock serialises every call, which is enough for tests and keeps the order
/// of operations — and so the crash schedule — deterministic for a deterministic caller.</para>
/// </remarks>
public sealed class FaultInjectingFileSystem : IFileSystem
{
    /// <summary>The sector size at which pending writes tear.</summary>
    public const int SectorSizeBytes = 512;

    private readonly object _gate = new();
    private readonly HashSet<string> _directories = new(StringComparer.Ordinal) { "/" };
    private readonly Dictionary<string, DirectoryState> _entries = new(StringComparer.Ordinal);
    private readonly HashSet<string> _heldLocks = new(StringComparer.Ordinal);
    private readonly Random _random;
    private readonly HashSet<FaultStorageFile> _openFiles = [];
    private long _nextInodeId;
    private int _epoch;
    private bool _crashed;

    /// <summary>Creates an empty disk whose crash outcomes are drawn from <paramref name="seed"/>.</summary>
    public FaultInjectingFileSystem(int seed)
    {
        Seed = seed;
        _random = new Random(seed);
    }

    /// <summary>The seed all crash outcomes are drawn from.</summary>
    public int Seed { get; }

    /// <summary>Mutating operations since creation or the last <see cref="Restart"/>.</summary>
    public long OperationCount { get; private set; }

    /// <summary>Successful <see cref="IStorageFile.Flush"/> calls since creation (not reset by restarts).</summary>
    public long FlushCount { get; private set; }

    /// <summary>Successful write calls (a gather write counts once) since creation (not reset by restarts).</summary>
    public long WriteCount { get; private set; }

    /// <summary>Restarts so far.</summary>
    public int RestartCount { get; private set; }


    /// <summary>
    /// When set, the mutating operation with this 1-based <see cref="OperationCount"/> takes effect
    /// and then the disk crashes: that call and every later one throws <see cref="SimulatedCrashException"/>.
    /// Cleared by the crash.
    /// </summary>
    public long? CrashAfterOperation { get; set; }

    /// <summary>
    /// When set, the next Flush does not take effect: the disk crashes as it starts (that call and
    /// every later one throws <see cref="SimulatedCrashException"/>) — a machine that died between a
    /// write and its fsync. Cleared by the crash and by <see cref="Restart"/>.
    /// </summary>
    public bool CrashAtNextFlush { get; set; }

    /// <summary>
    /// Called before every mutating operation; when it returns true the operation throws an
    /// <see cref="IOException"/> and has no effect (a failed flush leaves its writes pending).
    /// </summary>
    public Func<FaultOperation, bool>? FailWhen { get; set; }

    /// <summary>
    /// Called on the calling thread when a file's Write or Flush starts, before it takes the file
    /// system's lock, so a test can hold one thread inside a call while other threads' calls go
    /// ahead (<see cref="FailWhen"/> runs under that lock and would hold them all).
    /// </summary>
    public Action<FaultOperationKind, string>? BeforeEntering { get; set; }

    /// <summary>
    /// Paths of the handles opened since the last <see cref="Restart"/> and not yet disposed (a
    /// restart forgets the handles opened before it: they are dead). An owner that was disposed
    /// must leave none here.
    /// </summary>
    public IReadOnlyList<string> OpenFiles
    {
        get
        {
            lock (_gate)
            {
                return _openFiles.Select(f => f.Path).OrderBy(p => p, StringComparer.Ordinal).ToList();
            }
        }
    }

    /// <summary>True while some process holds the exclusive lock on <paramref name="lockFilePath"/>.</summary>
    public bool IsLocked(string lockFilePath)
    {
        lock (_gate)
        {
            return _heldLocks.Contains(Normalize(lockFilePath));
        }
    }

    /// <summary>True between a crash and the next <see cref="Restart"/>.</summary>
    public bool IsCrashed
    {
        get
        {
            lock (_gate)
            {
                return _crashed;
            }
        }
    }

    /// <summary>Crashes now: every later call throws until <see cref="Restart"/>.</summary>
    public void Crash()
    {
        lock (_gate)
        {
            _crashed = true;
            CrashAfterOperation = null;
            CrashAtNextFlush = false;
        }
    }

    /// <summary>
    /// Simulates the machine coming back after a crash (crashing first if it has not): unflushed
    /// writes are kept, dropped or torn, unsynced directory changes are undone, locks are released
    /// and every handle opened before is dead.
    /// </summary>
    public void Restart() => Restart(dropUnflushed: false);

    /// <summary>
    /// As <see cref="Restart()"/>; with <paramref name="dropUnflushed"/> every unflushed write is
    /// dropped whole (none kept or torn): the worst a crash can do to what was not synced.
    /// </summary>
    public void Restart(bool dropUnflushed)
    {
        lock (_gate)
        {
            _crashed = false;
            CrashAfterOperation = null;
            CrashAtNextFlush = false;
            _epoch++;
            RestartCount++;
            OperationCount = 0;
            _heldLocks.Clear();
            _openFiles.Clear();

            // Resolve each file exactly once, in creation order, so the outcome depends on the seed only.
            var resolved = new HashSet<Inode>();
            foreach (var inode in _entries.Values.SelectMany(d => d.Durable.Values.Concat(d.Current.Values)).Distinct().OrderBy(i => i.Id))
            {
                if (resolved.Add(inode))
                {
                    inode.ResolveCrash(_random, dropUnflushed);
                }
            }

            foreach (var directory in _entries.Values)
            {
                directory.Current = new Dictionary<string, Inode>(directory.Durable, StringComparer.Ordinal);
            }
        }
    }

    /// <summary>Flips bit <paramref name="bit"/> (0–7) of the byte at <paramref name="offset"/> of a file, durably.</summary>
    public void FlipBit(string path, long offset, int bit)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bit);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(bit, 7);
        lock (_gate)
        {
            var inode = FindCurrent(path) ?? throw new FileNotFoundException($"No file '{path}'.", path);
            inode.FlipBit(offset, (byte)(1 << bit));
        }
    }

    /// <summary>The current length of a file, as reads see it now (including writes not yet flushed).</summary>
    public long GetLength(string path)
    {
        lock (_gate)
        {
            var inode = FindCurrent(path) ?? throw new FileNotFoundException($"No file '{path}'.", path);
            return inode.CurrentLength;
        }
    }

    /// <summary>Every file path that exists now, sorted ordinally.</summary>
    public IReadOnlyList<string> AllFiles()
    {
        lock (_gate)
        {
            return _entries.SelectMany(d => d.Value.Current.Keys.Select(name => Join(d.Key, name)))
                .OrderBy(p => p, StringComparer.Ordinal).ToList();
        }
    }

    /// <inheritdoc />
    public IStorageFile Open(string path, FileOpenMode mode)
    {
        lock (_gate)
        {
            ThrowIfCrashed();
            var (directory, name) = Split(path);
            var inode = FindCurrent(path);
            switch (mode)
            {
                case FileOpenMode.OpenExisting:
                case FileOpenMode.ReadOnly:
                    if (inode is null)
                    {
                        throw new FileNotFoundException($"Could not find file '{path}'.", path);
                    }

                    break;
                case FileOpenMode.CreateNew when inode is not null:
                    throw new IOException($"The file '{path}' already exists.");
                case FileOpenMode.CreateNew:
                case FileOpenMode.OpenOrCreate:
                    if (inode is null)
                    {
                        if (!_directories.Contains(directory))
                        {
                            throw new DirectoryNotFoundException($"Could not find a part of the path '{path}'.");
                        }

                        BeginOperation(FaultOperationKind.Create, path, 0, 0);
                        inode = new Inode(_nextInodeId++);
                        GetDirectory(directory).Current[name] = inode;
                        EndOperation();
                    }

                    break;
                default:
                    throw new ArgumentOutOfRangeException(nameof(mode), mode, "Unknown file open mode.");
            }

            var file = new FaultStorageFile(this, inode, path, _epoch, readOnly: mode == FileOpenMode.ReadOnly);
            _openFiles.Add(file);
            return file;
        }
    }

    /// <inheritdoc />
    public bool FileExists(string path)
    {
        lock (_gate)
        {
            ThrowIfCrashed();
            return FindCurrent(path) is not null;
        }
    }

    /// <inheritdoc />
    public bool DirectoryExists(string path)
    {
        lock (_gate)
        {
            ThrowIfCrashed();
            return _directories.Contains(Normalize(path));
        }
    }

    /// <inheritdoc />
    public void CreateDirectory(string path)
    {
        lock (_gate)
        {
            ThrowIfCrashed();
            for (string? p = Normalize(path); p is not null && p.Length > 0; p = Path.GetDirectoryName(p))
            {
                _directories.Add(p);
            }
        }
    }

    /// <inheritdoc />
    public void DeleteFile(string path)
    {
        lock (_gate)
        {
            ThrowIfCrashed();
            var (directory, name) = Split(path);
            if (!_entries.TryGetValue(directory, out var state) || !state.Current.ContainsKey(name))
            {
                return;
            }

            BeginOperation(FaultOperationKind.Delete, path, 0, 0);
            state.Current.Remove(name);
            EndOperation();
        }
    }

    /// <inheritdoc />
    public void Rename(string sourcePath, string destinationPath)
    {
        lock (_gate)
        {
            ThrowIfCrashed();
            var (sourceDirectory, sourceName) = Split(sourcePath);
            var (destinationDirectory, destinationName) = Split(destinationPath);
            var inode = FindCurrent(sourcePath) ?? throw new FileNotFoundException($"Could not find file '{sourcePath}'.", sourcePath);
            if (!_directories.Contains(destinationDirectory))
            {
                throw new DirectoryNotFoundException($"Could not find a part of the path '{destinationPath}'.");
            }

            BeginOperation(FaultOperationKind.Rename, sourcePath, 0, 0);
            GetDirectory(sourceDirectory).Current.Remove(sourceName);
            GetDirectory(destinationDirectory).Current[destinationName] = inode;
            EndOperation();
        }
    }

    /// <inheritdoc />
    public IReadOnlyList<string> ListFiles(string directory)
    {
        lock (_gate)
        {
            ThrowIfCrashed();
            string normalized = Normalize(directory);
            if (!_directories.Contains(normalized))
            {
                throw new DirectoryNotFoundException($"Could not find a part of the path '{directory}'.");
            }

            return _entries.TryGetValue(normalized, out var state)
                ? state.Current.Keys.OrderBy(n => n, StringComparer.Ordinal).ToList()
                : [];
        }
    }

    /// <inheritdoc />
    public void SyncDirectory(string directory)
    {
        lock (_gate)
        {
            ThrowIfCrashed();
            string normalized = Normalize(directory);
            if (!_directories.Contains(normalized))
            {
                throw new DirectoryNotFoundException($"Could not find a part of the path '{directory}'.");
            }

            BeginOperation(FaultOperationKind.SyncDirectory, normalized, 0, 0);
            var state = GetDirectory(normalized);
            state.Durable = new Dictionary<string, Inode>(state.Current, StringComparer.Ordinal);
            EndOperation();
        }
    }

    /// <inheritdoc />
    public IDisposable AcquireExclusiveLock(string lockFilePath)
    {
        lock (_gate)
        {
            ThrowIfCrashed();
            string normalized = Normalize(lockFilePath);
            if (!_heldLocks.Add(normalized))
            {
                throw new StorageLockedException(lockFilePath);
            }

            return new HeldLock(this, normalized, _epoch);
        }
    }

    // ---- Called by FaultStorageFile, always under _gate. ----

    internal object Gate => _gate;

    internal void Closed(FaultStorageFile file)
    {
        lock (_gate)
        {
            _openFiles.Remove(file);
        }
    }

    internal void CheckHandleUnsynchronized(int epoch, string path)
    {
        ThrowIfCrashed();
        if (epoch != _epoch)
        {
            throw new ObjectDisposedException(path, "This handle was opened before a simulated restart and is dead.");
        }
    }

    internal void BeginOperation(FaultOperationKind kind, string path, long offset, long length)
    {
        ThrowIfCrashed();
        long sequence = OperationCount + 1;
        if (CrashAtNextFlush && kind == FaultOperationKind.Flush)
        {
            _crashed = true;
            CrashAtNextFlush = false;
            CrashAfterOperation = null;
            throw new SimulatedCrashException($"Simulated crash at the start of a flush of '{path}' (operation {sequence}, seed {Seed}).");
        }

        if (FailWhen?.Invoke(new FaultOperation(kind, path, offset, length, sequence)) == true)
        {
            throw new IOException($"Injected failure of {kind} on '{path}' (operation {sequence}, seed {Seed}).");
        }

        OperationCount = sequence;
        if (kind == FaultOperationKind.Flush)
        {
            FlushCount++;
        }
        else if (kind == FaultOperationKind.Write)
        {
            WriteCount++;
        }
    }

    /// <summary>Completes a mutating operation: crashes here when the schedule says so.</summary>
    internal void EndOperation()
    {
        if (CrashAfterOperation is long crashAt && OperationCount >= crashAt)
        {
            _crashed = true;
            CrashAfterOperation = null;
            throw new SimulatedCrashException($"Simulated crash after operation {OperationCount} (seed {Seed}).");
        }
    }

    private void ThrowIfCrashed()
    {
        if (_crashed)
        {
            throw new SimulatedCrashException($"The simulated disk has crashed (seed {Seed}); call Restart().");
        }
    }

    private void ReleaseLock(string path, int epoch)
    {
        lock (_gate)
        {
            if (epoch == _epoch)
            {
                _heldLocks.Remove(path);
            }
        }
    }

    private Inode? FindCurrent(string path)
    {
        var (directory, name) = Split(path);
        return _entries.TryGetValue(directory, out var state) && state.Current.TryGetValue(name, out var inode) ? inode : null;
    }

    private DirectoryState GetDirectory(string directory)
    {
        if (!_entries.TryGetValue(directory, out var state))
        {
            state = new DirectoryState();
            _entries.Add(directory, state);
        }

        return state;
    }

    private static (string Directory, string Name) Split(string path)
    {
        string normalized = Normalize(path);
        string? directory = Path.GetDirectoryName(normalized);
        string name = Path.GetFileName(normalized);
        if (string.IsNullOrEmpty(name))
        {
            throw new ArgumentException($"'{path}' does not name a file.", nameof(path));
        }

        return (string.IsNullOrEmpty(directory) ? "/" : directory, name);
    }

    private static string Normalize(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string full = Path.GetFullPath(path.Replace('\\', '/'), "/");
        return full.Length > 1 ? Path.TrimEndingDirectorySeparator(full) : full;
    }

    private static string Join(string directory, string name) => directory == "/" ? "/" + name : directory + "/" + name;

    private sealed class DirectoryState
    {
        public Dictionary<string, Inode> Durable { get; set; } = new(StringComparer.Ordinal);

        public Dictionary<string, Inode> Current { get; set; } = new(StringComparer.Ordinal);
    }

    private sealed class HeldLock(FaultInjectingFileSystem owner, string path, int epoch) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                owner.ReleaseLock(path, epoch);
            }
        }
    }
}
