using Microsoft.Win32.SafeHandles;

namespace EmbeddedRaft.Storage.IO;

/// <summary>
/// The real disk: <see cref="SafeFileHandle"/> with <see cref="RandomAccess"/> positional IO,
/// <c>fdatasync</c>, <c>posix_fallocate</c> and directory <c>fsync</c> on Linux, and the portable
/// .NET equivalents elsewhere. Thread-safe; holds no state of its own.
/// </summary>
public sealed class PhysicalFileSystem : IFileSystem
{
    /// <summary>The shared instance; the type has no state, so one is enough.</summary>
    public static PhysicalFileSystem Instance { get; } = new();

    private PhysicalFileSystem()
    {
    }

    /// <inheritdoc />
    public IStorageFile Open(string path, FileOpenMode mode)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var (fileMode, access) = mode switch
        {
            FileOpenMode.OpenExisting => (FileMode.Open, FileAccess.ReadWrite),
            FileOpenMode.CreateNew => (FileMode.CreateNew, FileAccess.ReadWrite),
            FileOpenMode.OpenOrCreate => (FileMode.OpenOrCreate, FileAccess.ReadWrite),
            FileOpenMode.ReadOnly => (FileMode.Open, FileAccess.Read),
            _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "Unknown file open mode."),
        };
        // FileShare.ReadWrite: exclusion between writers is the job of AcquireExclusiveLock, not of
        // every handle (readers of a live WAL or B+tree file open it while the writer holds it).
        var handle = File.OpenHandle(path, fileMode, access, FileShare.ReadWrite | FileShare.Delete);
        return new PhysicalStorageFile(path, handle);
    }

    /// <inheritdoc />
    public bool FileExists(string path) => File.Exists(path);

    /// <inheritdoc />
    public bool DirectoryExists(string path) => Directory.Exists(path);

    /// <inheritdoc />
    public void CreateDirectory(string path) => Directory.CreateDirectory(path);

    /// <inheritdoc />
    public void DeleteFile(string path) => File.Delete(path);

    /// <inheritdoc />
    public void Rename(string sourcePath, string destinationPath) => File.Move(sourcePath, destinationPath, overwrite: true);

    /// <inheritdoc />
    public IReadOnlyList<string> ListFiles(string directory)
    {
        var names = new List<string>();
        foreach (var file in Directory.EnumerateFiles(directory))
        {
            names.Add(Path.GetFileName(file));
        }

        names.Sort(StringComparer.Ordinal);
        return names;
    }

    /// <inheritdoc />
    public void SyncDirectory(string directory)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS() && !OperatingSystem.IsFreeBSD())
        {
            // Windows journals directory metadata itself and has no portable way to flush a directory.
            return;
        }

        int fd = NativeMethods.Open(directory, NativeMethods.ReadOnly);
        if (fd < 0)
        {
            throw NativeMethods.LastErrorAsIOException($"open directory '{directory}' for fsync");
        }

        try
        {
            if (NativeMethods.FSync(fd) != 0)
            {
                throw NativeMethods.LastErrorAsIOException($"fsync directory '{directory}'");
            }
        }
        finally
        {
            _ = NativeMethods.Close(fd);
        }
    }

    /// <inheritdoc />
    public IDisposable AcquireExclusiveLock(string lockFilePath)
    {
        try
        {
            // On Unix, .NET backs FileShare.None with flock(LOCK_EX | LOCK_NB): another process, or
            // another handle in this process, trying the same fails at once instead of waiting.
            return File.OpenHandle(lockFilePath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
        {
            throw new StorageLockedException(lockFilePath, e);
        }
    }
}
