namespace EmbeddedRaft.Storage.IO;

/// <summary>
/// An open file addressed by absolute offsets (no shared file position), so concurrent readers and
/// one writer never race on a cursor. See <see cref="IFileSystem"/> for the durability contract.
/// </summary>
public interface IStorageFile : IDisposable
{
    /// <summary>The path the file was opened with.</summary>
    string Path { get; }

    /// <summary>The current length of the file in bytes (including writes not yet flushed).</summary>
    long Length { get; }

    /// <summary>
    /// Reads up to <c>buffer.Length</c> bytes at <paramref name="offset"/>. Returns the number of bytes
    /// read, which is smaller than requested only at the end of the file.
    /// </summary>
    int Read(long offset, Span<byte> buffer);

    /// <summary>Writes all of <paramref name="data"/> at <paramref name="offset"/>, extending the file when needed.</summary>
    void Write(long offset, ReadOnlySpan<byte> data);

    /// <summary>
    /// Writes the buffers back to back starting at <paramref name="offset"/> in one call (a gather
    /// write), so a group commit costs one system call however many records it carries.
    /// </summary>
    void Write(long offset, IReadOnlyList<ReadOnlyMemory<byte>> buffers);

    /// <summary>
    /// Makes every write to this file that returned before the call, and its length, durable
    /// (<c>fdatasync</c> on Linux). A write and a flush may run at the same time on one handle from
    /// two threads; a write still in progress when the flush is called may or may not be included.
    /// </summary>
    /// <exception cref="IOException">The device reported a failure; the written data must be treated as lost.</exception>
    void Flush();

    /// <summary>
    /// Asks the operating system to start writing the written-but-unflushed data of the
    /// <paramref name="length"/> bytes at <paramref name="offset"/> to the device now, without
    /// waiting for it, so the device works while the caller goes on (Linux: <c>sync_file_range</c>
    /// with <c>SYNC_FILE_RANGE_WRITE</c> only). A hint: it makes nothing durable (only
    /// <see cref="Flush"/> does), and it never reports an error (a write that fails is reported by
    /// the next <see cref="Flush"/>). The default implementation does nothing.
    /// </summary>
    void StartWriteBack(long offset, long length)
    {
    }

    /// <summary>Truncates or extends (with zeros) the file to <paramref name="length"/> bytes.</summary>
    void SetLength(long length);

    /// <summary>
    /// Ensures the file is at least <paramref name="length"/> bytes long, reserving the disk space
    /// up front (<c>fallocate</c> on Linux) so later writes inside it neither fail for space nor
    /// need a metadata update to be durable. The new bytes read as zeros.
    /// </summary>
    void Preallocate(long length);
}
