using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Benchmarks.IO;

/// <summary>
/// A file system that passes every call to <see cref="Inner"/>: the base of the benchmarks' probes
/// and diagnostics that time, count or replace a few calls. Every member is forwarded here, so a
/// wrapper overrides only what it observes and can never keep an interface default by omission
/// (session 26: a wrapper that did not forward the WAL's then zero-range call made the WAL unlink
/// every released segment under <c>cluster-load --fsync-ms</c>).
/// </summary>
internal abstract class ForwardingFileSystem(IFileSystem inner) : IFileSystem
{
    /// <summary>The file system every call reaches.</summary>
    protected IFileSystem Inner { get; } = inner;

    public virtual IStorageFile Open(string path, FileOpenMode mode) => Inner.Open(path, mode);

    public virtual bool FileExists(string path) => Inner.FileExists(path);

    public virtual bool DirectoryExists(string path) => Inner.DirectoryExists(path);

    public virtual void CreateDirectory(string path) => Inner.CreateDirectory(path);

    public virtual void DeleteFile(string path) => Inner.DeleteFile(path);

    public virtual void Rename(string sourcePath, string destinationPath) => Inner.Rename(sourcePath, destinationPath);

    public virtual IReadOnlyList<string> ListFiles(string directory) => Inner.ListFiles(directory);

    public virtual void SyncDirectory(string directory) => Inner.SyncDirectory(directory);

    public virtual IDisposable AcquireExclusiveLock(string lockFilePath) => Inner.AcquireExclusiveLock(lockFilePath);
}
