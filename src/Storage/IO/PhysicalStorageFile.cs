using Microsoft.Win32.SafeHandles;

namespace EmbeddedRaft.Storage.IO;

/// <summary>An open file on the real disk; see <see cref="PhysicalFileSystem"/>.</summary>
internal sealed class PhysicalStorageFile : IStorageFile
{
    private readonly SafeFileHandle _handle;

    public PhysicalStorageFile(string path, SafeFileHandle handle)
    {
        Path = path;
        _handle = handle;
    }

    public string Path { get; }

    public long Length => RandomAccess.GetLength(_handle);

    public int Read(long offset, Span<byte> buffer)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int read = RandomAccess.Read(_handle, buffer[total..], offset + total);
            if (read == 0)
            {
                break;
            }

            total += read;
        }

        return total;
    }

    public void Write(long offset, ReadOnlySpan<byte> data) => RandomAccess.Write(_handle, data, offset);

    public void Write(long offset, IReadOnlyList<ReadOnlyMemory<byte>> buffers) => RandomAccess.Write(_handle, buffers, offset);

    public void Flush()
    {
        if (OperatingSystem.IsLinux())
        {
            // fdatasync: the data and whatever metadata is needed to read it back (the length), but
            // not the timestamps — one disk round trip instead of two on most file systems.
            if (CallWithDescriptor(0, static (fd, _) => NativeMethods.FDataSync(fd)) != 0)
            {
                throw NativeMethods.LastErrorAsIOException($"fdatasync '{Path}'");
            }

            return;
        }

        RandomAccess.FlushToDisk(_handle);
    }

    public void StartWriteBack(long offset, long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (OperatingSystem.IsLinux() && length > 0)
        {
            // SYNC_FILE_RANGE_WRITE alone: it only submits the write-out. The wait flags are left
            // out on purpose: waiting there would consume a write-back error that fdatasync must
            // report to Flush. A failure here (an old kernel, a file system without it) is ignored:
            // the data is still written and made durable by Flush.
            _ = CallWithDescriptor((offset, length), static (fd, range) => NativeMethods.SyncFileRange(fd, range.offset, range.length, NativeMethods.SyncFileRangeWrite));
        }
    }

    public void SetLength(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        RandomAccess.SetLength(_handle, length);
    }

    public void Preallocate(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        long current = Length;
        if (length <= current)
        {
            return;
        }

        if (OperatingSystem.IsLinux())
        {
            int error = CallWithDescriptor((current, length), static (fd, range) => NativeMethods.PosixFallocate(fd, range.current, range.length - range.current));
            if (error == 0)
            {
                return;
            }

            if (error != NativeMethods.ErrorNotSupported && error != NativeMethods.ErrorInvalidArgument)
            {
                throw new IOException($"posix_fallocate '{Path}' to {length} bytes failed with errno {error}.");
            }
        }

        // No fallocate on this file system or platform: extending the length still gives zeros,
        // only without the up-front space reservation.
        RandomAccess.SetLength(_handle, length);
    }

    public void Dispose() => _handle.Dispose();

    /// <summary>
    /// Calls <paramref name="call"/> with the file descriptor while holding a reference on the
    /// handle, so a Dispose on another thread (the WAL's writer and syncer share a file) cannot
    /// close the descriptor mid-call, nor the OS hand its number to another file: a call after
    /// Dispose throws <see cref="ObjectDisposedException"/> instead.
    /// </summary>
    private int CallWithDescriptor<TState>(TState state, Func<int, TState, int> call)
    {
        bool added = false;
        try
        {
            _handle.DangerousAddRef(ref added);
            return call(checked((int)_handle.DangerousGetHandle()), state);
        }
        finally
        {
            if (added)
            {
                _handle.DangerousRelease();
            }
        }
    }
}
