using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.TestSupport.IO;

/// <summary>A handle on a simulated file; dead after the file system restarts.</summary>
internal sealed class FaultStorageFile(FaultInjectingFileSystem fileSystem, Inode inode, string path, int epoch, bool readOnly) : IStorageFile
{
    private bool _disposed;

    public string Path { get; } = path;

    public long Length
    {
        get
        {
            lock (fileSystem.Gate)
            {
                Check();
                return inode.CurrentLength;
            }
        }
    }

    public int Read(long offset, Span<byte> buffer)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        lock (fileSystem.Gate)
        {
            Check();
            return inode.Read(offset, buffer);
        }
    }

    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        fileSystem.BeforeEntering?.Invoke(FaultOperationKind.Write, Path);
        lock (fileSystem.Gate)
        {
            CheckWritable();
            fileSystem.BeginOperation(FaultOperationKind.Write, Path, offset, data.Length);
            inode.Write(offset, data);
            fileSystem.EndOperation();
        }
    }

    public void Write(long offset, IReadOnlyList<ReadOnlyMemory<byte>> buffers)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        fileSystem.BeforeEntering?.Invoke(FaultOperationKind.Write, Path);
        lock (fileSystem.Gate)
        {
            CheckWritable();
            long total = 0;
            foreach (var buffer in buffers)
            {
                total += buffer.Length;
            }

            // One call, one operation: a crash lands after the whole gather write, and at restart
            // each piece is kept, dropped or torn on its own, as separate sectors would be.
            fileSystem.BeginOperation(FaultOperationKind.Write, Path, offset, total);
            long position = offset;
            foreach (var buffer in buffers)
            {
                inode.Write(position, buffer.Span);
                position += buffer.Length;
            }

            fileSystem.EndOperation();
        }
    }

    public void Flush()
    {
        // Only the writes that returned before the call are made durable, as with fdatasync: a
        // write that another thread does while this flush is held (BeforeEntering) stays pending.
        long mark;
        lock (fileSystem.Gate)
        {
            mark = inode.OperationMark;
        }

        fileSystem.BeforeEntering?.Invoke(FaultOperationKind.Flush, Path);
        lock (fileSystem.Gate)
        {
            CheckWritable();
            fileSystem.BeginOperation(FaultOperationKind.Flush, Path, 0, 0);
            inode.Flush(mark);
            fileSystem.EndOperation();
        }
    }


    public void SetLength(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        lock (fileSystem.Gate)
        {
            CheckWritable();
            fileSystem.BeginOperation(FaultOperationKind.SetLength, Path, length, 0);
            inode.SetLength(length);
            fileSystem.EndOperation();
        }
    }

    public void Preallocate(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        lock (fileSystem.Gate)
        {
            CheckWritable();
            if (length <= inode.CurrentLength)
            {
                return;
            }

            fileSystem.BeginOperation(FaultOperationKind.Preallocate, Path, length, 0);
            inode.SetLength(length);
            fileSystem.EndOperation();
        }
    }

    public void Dispose()
    {
        _disposed = true;
        fileSystem.Closed(this);
    }

    private void Check()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        fileSystem.CheckHandleUnsynchronized(epoch, Path);
    }

    private void CheckWritable()
    {
        Check();
        if (readOnly)
        {
            throw new UnauthorizedAccessException($"'{Path}' was opened read-only.");
        }
    }
}
