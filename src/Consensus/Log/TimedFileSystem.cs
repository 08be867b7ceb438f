using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Consensus.Log;

/// <summary>
/// An <see cref="IFileSystem"/> that passes every call through and reports how long each file
/// flush took: the write-ahead log's fsyncs are timed here, at the one place they happen, without a
/// hook in the log itself. Thread-safe as the wrapped file system is.
/// </summary>
internal sealed class TimedFileSystem(IFileSystem inner, TimeProvider time, Action<string, TimeSpan> flushed) : IFileSystem
{
    public IStorageFile Open(string path, FileOpenMode mode) => new TimedStorageFile(inner.Open(path, mode), time, flushed);

    public bool FileExists(string path) => inner.FileExists(path);

    public bool DirectoryExists(string path) => inner.DirectoryExists(path);

    public void CreateDirectory(string path) => inner.CreateDirectory(path);

    public void DeleteFile(string path) => inner.DeleteFile(path);

    public void Rename(string sourcePath, string destinationPath) => inner.Rename(sourcePath, destinationPath);

    public IReadOnlyList<string> ListFiles(string directory) => inner.ListFiles(directory);

    public void SyncDirectory(string directory) => inner.SyncDirectory(directory);

    public IDisposable AcquireExclusiveLock(string lockFilePath) => inner.AcquireExclusiveLock(lockFilePath);

    private sealed class TimedStorageFile(IStorageFile inner, TimeProvider time, Action<string, TimeSpan> flushed) : IStorageFile
    {
        public string Path => inner.Path;

        public long Length => inner.Length;

        public int Read(long offset, Span<byte> buffer) => inner.Read(offset, buffer);

        public void Write(long offset, ReadOnlySpan<byte> data) => inner.Write(offset, data);

        public void Write(long offset, IReadOnlyList<ReadOnlyMemory<byte>> buffers) => inner.Write(offset, buffers);

        public void Flush()
        {
            long started = time.GetTimestamp();
            inner.Flush();
            flushed(inner.Path, time.GetElapsedTime(started));
        }

        public void StartWriteBack(long offset, long length) => inner.StartWriteBack(offset, length);


        public void SetLength(long length) => inner.SetLength(length);

        public void Preallocate(long length) => inner.Preallocate(length);

        public void Dispose() => inner.Dispose();
    }
}
