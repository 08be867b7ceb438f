namespace EmbeddedRaft.Storage.IO;

/// <summary>
/// The one door through which the storage layer touches a disk. Every byte the write-ahead log,
/// the snapshotter and the B+tree read or write goes through an implementation of this interface,
/// so the same code runs on the real disk (<see cref="PhysicalFileSystem"/>) and on the
/// fault-injecting in-memory twin the tests use to crash it on purpose.
/// </summary>
/// <remarks>
/// Durability contract, which both implementations honour and the callers rely on:
/// <list type="bullet">
/// <item>Bytes written to a file are durable only after <see cref="IStorageFile.Flush"/> on that file
/// returns; until then a crash may keep, drop or tear each write at a 512-byte sector boundary.</item>
/// <item>A file's length (after <see cref="IStorageFile.SetLength"/> or
/// <see cref="IStorageFile.Preallocate"/>) is durable after the next flush of that file.</item>
/// <item>Creating, renaming or deleting a file is durable only after <see cref="SyncDirectory"/> on
/// the directory that holds it; until then a crash may undo it.</item>
/// </list>
/// Paths are plain strings joined with <see cref="Path.Combine(string, string)"/>. Implementations are
/// safe to call from several threads at once; a single <see cref="IStorageFile"/> supports concurrent
/// positional reads and writes to disjoint ranges.
/// </remarks>
public interface IFileSystem
{
    /// <summary>Opens or creates a file.</summary>
    /// <exception cref="FileNotFoundException"><paramref name="mode"/> is <see cref="FileOpenMode.OpenExisting"/> and the file does not exist.</exception>
    /// <exception cref="IOException"><paramref name="mode"/> is <see cref="FileOpenMode.CreateNew"/> and the file exists.</exception>
    IStorageFile Open(string path, FileOpenMode mode);

    /// <summary>True when a file exists at <paramref name="path"/>.</summary>
    bool FileExists(string path);

    /// <summary>True when a directory exists at <paramref name="path"/>.</summary>
    bool DirectoryExists(string path);

    /// <summary>Creates a directory and any missing parents; does nothing when it exists.</summary>
    void CreateDirectory(string path);

    /// <summary>Deletes a file; does nothing when it does not exist. Durable after <see cref="SyncDirectory"/>.</summary>
    void DeleteFile(string path);

    /// <summary>
    /// Renames <paramref name="sourcePath"/> to <paramref name="destinationPath"/>, atomically
    /// replacing the destination when it exists. Durable after <see cref="SyncDirectory"/>.
    /// </summary>
    void Rename(string sourcePath, string destinationPath);

    /// <summary>The names (not full paths) of the files directly inside <paramref name="directory"/>, sorted ordinally.</summary>
    IReadOnlyList<string> ListFiles(string directory);

    /// <summary>Makes the creations, renames and deletions of entries in <paramref name="directory"/> durable.</summary>
    void SyncDirectory(string directory);

    /// <summary>
    /// Takes an exclusive lock named by <paramref name="lockFilePath"/> that excludes every other
    /// holder, in this process or another. Dispose the result to release it.
    /// </summary>
    /// <exception cref="StorageLockedException">Someone else holds the lock.</exception>
    IDisposable AcquireExclusiveLock(string lockFilePath);
}
