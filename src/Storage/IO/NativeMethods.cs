using System.Runtime.InteropServices;

namespace EmbeddedRaft.Storage.IO;

/// <summary>The few libc calls .NET does not expose: fdatasync, sync_file_range, posix_fallocate, fallocate (zero range) and fsync.</summary>
internal static partial class NativeMethods
{
    private const string LibC = "libc";

    public const int ReadOnly = 0;
    public const int ErrorInvalidArgument = 22; // EINVAL
    public const int ErrorNotSupported = 95;    // EOPNOTSUPP

    [LibraryImport(LibC, EntryPoint = "fdatasync", SetLastError = true)]
    public static partial int FDataSync(int fd);

    /// <summary><c>sync_file_range</c> flag: start write-out of dirty pages not already under write-out; do not wait.</summary>
    public const uint SyncFileRangeWrite = 2;

    [LibraryImport(LibC, EntryPoint = "sync_file_range", SetLastError = true)]
    public static partial int SyncFileRange(int fd, long offset, long length, uint flags);

    [LibraryImport(LibC, EntryPoint = "fsync", SetLastError = true)]
    public static partial int FSync(int fd);

    /// <summary>Returns 0 or an errno value (posix_fallocate does not set errno).</summary>
    [LibraryImport(LibC, EntryPoint = "posix_fallocate")]
    public static partial int PosixFallocate(int fd, long offset, long length);

    [LibraryImport(LibC, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    [LibraryImport(LibC, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    public static IOException LastErrorAsIOException(string operation)
    {
        int errno = Marshal.GetLastPInvokeError();
        return new IOException($"{operation} failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno}).", errno);
    }
}
