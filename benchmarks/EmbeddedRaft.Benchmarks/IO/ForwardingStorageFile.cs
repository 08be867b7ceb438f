using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Benchmarks.IO;

/// <summary>
/// A file that passes every call to <see cref="Inner"/>, including the members
/// <see cref="IStorageFile"/> gives defaults (<see cref="StartWriteBack"/>):
/// the base of the benchmarks' wrapping files (see <see cref="ForwardingFileSystem"/>).
/// </summary>
internal abstract class ForwardingStorageFile(IStorageFile inner) : IStorageFile
{
    /// <summary>The file every call reaches.</summary>
    protected IStorageFile Inner { get; } = inner;

    public string Path => Inner.Path;

    public long Length => Inner.Length;

    public virtual int Read(long offset, Span<byte> buffer) => Inner.Read(offset, buffer);

    public virtual void Write(long offset, ReadOnlySpan<byte> data) => Inner.Write(offset, data);

    public virtual void Write(long offset, IReadOnlyList<ReadOnlyMemory<byte>> buffers) => Inner.Write(offset, buffers);

    public virtual void Flush() => Inner.Flush();

    public virtual void StartWriteBack(long offset, long length) => Inner.StartWriteBack(offset, length);

    public virtual void SetLength(long length) => Inner.SetLength(length);

    public virtual void Preallocate(long length) => Inner.Preallocate(length);

    public virtual void Dispose() => Inner.Dispose();
}
