using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Benchmarks.Consensus;

/// <summary>
/// The real file system with every flush replaced by a sleep of a fixed time (no fdatasync): a disk
/// whose fsync always takes <c>flushTime</c>, whatever it carries and whoever else uses the disk.
/// For <c>cluster-load --fsync-ms</c>: what the write pipeline's structure (how many fsyncs a
/// proposal waits for, how large the groups are) does to throughput, without the shared disk's
/// noise. Nothing it writes is durable: a diagnostic, never a figure of the library against a disk.
/// </summary>
internal sealed class FixedFsyncFileSystem(TimeSpan flushTime) : IFileSystem
{
    private readonly PhysicalFileSystem _inner = PhysicalFileSystem.Instance;

    public IStorageFile Open(string path, FileOpenMode mode) => new File(_inner.Open(path, mode), flushTime);

    public bool FileExists(string path) => _inner.FileExists(path);

    public bool DirectoryExists(string path) => _inner.DirectoryExists(path);

    public void CreateDirectory(string path) => _inner.CreateDirectory(path);

    public void DeleteFile(string path) => _inner.DeleteFile(path);

    public void Rename(string sourcePath, string destinationPath) => _inner.Rename(sourcePath, destinationPath);

    public IReadOnlyList<string> ListFiles(string directory) => _inner.ListFiles(directory);

    public void SyncDirectory(string directory) => Thread.Sleep(flushTime);

    public IDisposable AcquireExclusiveLock(string lockFilePath) => _inner.AcquireExclusiveLock(lockFilePath);

    private sealed class File(IStorageFile inner, TimeSpan flushTime) : IStorageFile
    {
        public string Path => inner.Path;

        public long Length => inner.Length;

        public int Read(long offset, Span<byte> buffer) => inner.Read(offset, buffer);

        public void Write(long offset, ReadOnlySpan<byte> data) => inner.Write(offset, data);

        public void Write(long offset, IReadOnlyList<ReadOnlyMemory<byte>> buffers) => inner.Write(offset, buffers);

        public void Flush() => Thread.Sleep(flushTime);

        public void StartWriteBack(long offset, long length) => inner.StartWriteBack(offset, length);

        // Forwarded (with the real fsync the call ends with) so the WAL reuses a released segment here
        // as on the real disk: without it, every release would unlink and every cut take fresh blocks.
        public bool ZeroRange(long offset, long length) => inner.ZeroRange(offset, length);

        public void SetLength(long length) => inner.SetLength(length);

        public void Preallocate(long length) => inner.Preallocate(length);

        public void Dispose() => inner.Dispose();
    }
}
